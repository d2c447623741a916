/**
 * arcbox-virtiofsd in a real VM: qemu (TCG, microvm) boots Debian's cloud kernel, mounts
 * two shares (read-write and read-only) over vhost-user-fs and runs a script through
 * them; the host checks the guest's report and the share's contents afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO } from "../helpers/daemon.ts";
import { bootGuest, failedChecks, type GuestRun, startVirtiofsd, virtiofsGuest } from "../helpers/virtiofs-vm.ts";

const root = mkdtempSync("/tmp/arcbox-vfs-test-");
const share = join(root, "share");
const ro = join(root, "ro");
const outside = join(root, "outside");
const SECRET = `secret-${randomBytes(8).toString("hex")}`;
const md5 = (b: Uint8Array | string) => createHash("md5").update(b).digest("hex");
const big = randomBytes(3 * 1024 * 1024 + 123);
let servers: Subprocess[] = [];
let run: GuestRun;
let probe: string;
let editSeenAt = 0;

const script = `
export M=/mnt/rw R=/mnt/ro
mkdir -p $M $R
mount -t virtiofs share $M && echo "CHECK mount ok"
mount -t virtiofs roshare $R && echo "CHECK mount-ro ok"
check() { name=$1; shift; if out=$("$@" 2>&1); then echo "CHECK $name ok"; else echo "CHECK $name FAIL $out"; fi; }
# must fail, and with EROFS
erofs() { name=$1; shift; if out=$(sh -c "$*" 2>&1); then echo "CHECK $name FAIL succeeded"; else case "$out" in *"Read-only file system"*) echo "CHECK $name ok";; *) echo "CHECK $name FAIL $out";; esac; fi; }

check read sh -c '[ "$(cat $M/hello.txt)" = "hello from the host" ]'
check read-big sh -c '[ "$(md5sum < $M/big.bin | cut -d" " -f1)" = "${md5(big)}" ]'
check write sh -c 'echo "written by the guest" > $M/new.txt && [ "$(cat $M/new.txt)" = "written by the guest" ]'
dd if=/dev/urandom of=$M/guest.bin bs=65536 count=40 2>/dev/null
echo "GUESTMD5 $(md5sum < $M/guest.bin | cut -d' ' -f1)"
check append sh -c 'echo more >> $M/new.txt && [ "$(wc -l < $M/new.txt)" = 2 ]'
check rename sh -c 'mv $M/new.txt $M/renamed.txt && [ ! -e $M/new.txt ] && [ "$(head -1 $M/renamed.txt)" = "written by the guest" ]'
check symlink sh -c 'ln -s renamed.txt $M/link && [ "$(readlink $M/link)" = renamed.txt ] && [ "$(head -1 $M/link)" = "written by the guest" ]'
check hardlink sh -c 'ln $M/renamed.txt $M/hard && [ "$(stat -c %h $M/renamed.txt)" = 2 ] && [ "$(stat -c %i $M/hard)" = "$(stat -c %i $M/renamed.txt)" ]'
check hardlink-keep sh -c 'ln $M/renamed.txt $M/hard2 && rm $M/hard2 && [ "$(stat -c %h $M/renamed.txt)" = 2 ]'
check xattr-set sh -c 'probe setxattr $M/renamed.txt user.arcbox yes && [ "$(probe getxattr $M/renamed.txt user.arcbox)" = xattr=yes ]'
check xattr-list sh -c 'probe listxattr $M/renamed.txt | grep -qx xattr-name=user.arcbox'
check xattr-host sh -c '[ "$(probe getxattr $M/hello.txt user.host)" = xattr=from-host ]'
check xattr-remove sh -c 'probe setxattr $M/renamed.txt user.gone x && probe removexattr $M/renamed.txt user.gone && ! probe getxattr $M/renamed.txt user.gone'
check mmap sh -c ': > $M/mm.bin && probe mmap $M/mm.bin'
check fsync probe fsync $M/synced.txt synced
check truncate sh -c 'truncate -s 10 $M/synced.txt 2>/dev/null || dd if=/dev/null of=$M/synced.txt bs=1 seek=10 2>/dev/null; [ "$(stat -c %s $M/synced.txt)" = 10 ]; truncate -s 6 $M/synced.txt; [ "$(cat $M/synced.txt)" = synced ]'
check mkdir-many sh -c 'mkdir $M/d && for i in $(seq 1 200); do : > $M/d/f$i; done; [ "$(ls $M/d | wc -l)" = 200 ]'
check rm-many sh -c 'rm $M/d/f* && rmdir $M/d && [ ! -e $M/d ]'
check readdir-big sh -c '[ "$(ls $M/many | wc -l)" = 600 ] && [ "$(ls -l $M/many | grep -c entry-)" = 600 ]'
check stat sh -c '[ "$(stat -c %s $M/big.bin)" = ${big.length} ]'
check statfs sh -c 'df $M | grep -q $M'
check unlink sh -c 'rm $M/hard && [ ! -e $M/hard ] && [ "$(stat -c %h $M/renamed.txt)" = 1 ]'
check chmod sh -c 'chmod 640 $M/renamed.txt && [ "$(stat -c %a $M/renamed.txt)" = 640 ]'
check chown sh -c 'chown 1234:2345 $M/renamed.txt && [ "$(stat -c %u:%g $M/renamed.txt)" = 1234:2345 ]'
check mknod-fifo sh -c 'mkfifo $M/fifo && [ -p $M/fifo ]'
# a write by a process without CAP_FSETID (root of a new user namespace) clears set-user-ID
# and group-executable set-group-ID bits; root's own write keeps them
check kill-suid sh -c 'echo x > $M/suid && chmod 6777 $M/suid && unshare -U sh -c "echo y >> $M/suid" && [ "$(stat -c %a $M/suid)" = 777 ]'
check keep-suid-root sh -c 'echo x > $M/suid-root && chmod 6777 $M/suid-root && echo y >> $M/suid-root && [ "$(stat -c %a $M/suid-root)" = 6777 ]'

# host-side edits: cache the old content, then wait for the host's change
check edit-before sh -c '[ "$(cat $M/edit.txt)" = v1 ] && [ ! -e $M/appeared.txt ] && [ "$(ls $M/listed)" = a ]'
echo READY-EDIT
# (appeared.txt was just looked up and missed: the guest holds a negative entry for it)
# (listed/ was just listed: the guest may hold that listing, and must drop it once the host adds b)
i=0; while { [ "$(cat $M/edit.txt)" != v2 ] || [ ! -e $M/appeared.txt ] || [ "$(ls $M/listed | tr '\\n' ' ')" != "a b " ]; } && [ $i -lt 80 ]; do sleep 0.1; i=$((i+1)); done
echo "EDIT-SEEN-AFTER $i"
check edit-seen sh -c '[ "$(cat $M/edit.txt)" = v2 ]'
check appeared sh -c '[ "$(cat $M/appeared.txt)" = new ]'
check listing-updated sh -c '[ "$(ls $M/listed | tr "\\n" " ")" = "a b " ]'

# escapes: host-side symlinks and .. must not reach ${outside}
cat $M/escape-abs 2>&1; cat $M/escape-rel 2>&1; ls -la $M/escape-dir/ 2>&1; cat $M/escape-dir/marker 2>&1
cat $M/../outside/marker 2>&1; cat $M/../../outside/marker 2>&1
echo pwned > $M/escape-abs 2>&1; echo pwned > $M/escape-rel 2>&1; echo pwned > $M/escape-dir/marker 2>&1
echo pwned > $M/escape-dir/planted 2>&1
(cd $M && cd .. && cat outside/marker) 2>&1
echo ESCAPES-DONE

# read-only share
check ro-read sh -c '[ "$(cat $R/ro.txt)" = "read only" ]'
erofs ro-write "echo x > $R/ro.txt"
erofs ro-create "echo x > $R/new.txt"
erofs ro-touch "touch $R/ro.txt"
erofs ro-mkdir "mkdir $R/d"
erofs ro-rm "rm $R/ro.txt"
erofs ro-rename "mv $R/ro.txt $R/moved.txt"
erofs ro-symlink "ln -s x $R/s"
erofs ro-link "ln $R/ro.txt $R/l"
erofs ro-chmod "chmod 600 $R/ro.txt"
erofs ro-xattr "probe setxattr $R/ro.txt user.x y"
erofs ro-open-rw "probe open $R/ro.txt rw"
check ro-unchanged sh -c '[ "$(cat $R/ro.txt)" = "read only" ] && [ "$(ls $R)" = ro.txt ]'

umount $M && echo "CHECK umount ok"
umount $R
`;

beforeAll(async () => {
  probe = (await virtiofsGuest()).probe;
  for (const d of [share, ro, outside, join(share, "many"), join(share, "listed")]) mkdirSync(d, { recursive: true });
  writeFileSync(join(share, "listed", "a"), "");
  writeFileSync(join(outside, "marker"), SECRET);
  writeFileSync(join(share, "hello.txt"), "hello from the host");
  writeFileSync(join(share, "big.bin"), big);
  writeFileSync(join(share, "edit.txt"), "v1");
  for (let i = 0; i < 600; i++) writeFileSync(join(share, "many", `entry-${String(i).padStart(4, "0")}-${"x".repeat(40)}`), "");
  symlinkSync(join(outside, "marker"), join(share, "escape-abs"));
  symlinkSync("../outside/marker", join(share, "escape-rel"));
  symlinkSync(outside, join(share, "escape-dir"));
  writeFileSync(join(ro, "ro.txt"), "read only");
  const x = Bun.spawnSync([probe, "setxattr", join(share, "hello.txt"), "user.host", "from-host"]);
  if (x.exitCode !== 0) throw new Error(`host setxattr: ${x.stdout}`);
  servers = [await startVirtiofsd({ socket: join(root, "rw.sock"), dir: share, stats: join(root, "rw.stats") }), await startVirtiofsd({ socket: join(root, "ro.sock"), dir: ro, readOnly: true })];
  const started = Date.now();
  run = await bootGuest({
    shares: [
      { tag: "share", socket: join(root, "rw.sock") },
      { tag: "roshare", socket: join(root, "ro.sock") },
    ],
    script,
    onLine: (line) => {
      if (line.startsWith("READY-EDIT")) {
        writeFileSync(join(share, "edit.txt"), "v2");
        writeFileSync(join(share, "appeared.txt"), "new");
        writeFileSync(join(share, "listed", "b"), "");
        editSeenAt = Date.now();
      }
    },
  });
  console.log(`guest run: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (process.env.ARCBOX_TEST_VERBOSE) console.log(run.output);
}, 300_000);

afterAll(() => {
  for (const s of servers) s.kill();
  rmSync(root, { recursive: true, force: true });
});

test("the guest script ran to the end", () => {
  if (run.exitCode !== 0) console.log(run.output);
  expect(run.exitCode).toBe(0);
  expect(run.output).toContain("ESCAPES-DONE");
});

test("every operation checked in the guest succeeded", () => {
  const expected = [
    "mount",
    "mount-ro",
    "read",
    "read-big",
    "write",
    "append",
    "rename",
    "symlink",
    "hardlink",
    "hardlink-keep",
    "xattr-set",
    "xattr-list",
    "xattr-host",
    "xattr-remove",
    "mmap",
    "fsync",
    "truncate",
    "mkdir-many",
    "rm-many",
    "readdir-big",
    "stat",
    "statfs",
    "unlink",
    "chmod",
    "chown",
    "mknod-fifo",
    "kill-suid",
    "keep-suid-root",
    "edit-before",
    "edit-seen",
    "appeared",
    "listing-updated",
    "umount",
  ];
  expect(failedChecks(run, expected)).toEqual([]);
});

test("the guest's writes landed on the host", () => {
  const guestMd5 = /GUESTMD5 ([0-9a-f]{32})/.exec(run.output)?.[1];
  expect(guestMd5).toBe(md5(readFileSync(join(share, "guest.bin"))));
  expect(readFileSync(join(share, "renamed.txt"), "utf8")).toBe("written by the guest\nmore\n");
  expect(existsSync(join(share, "new.txt"))).toBe(false);
  expect(readlinkSync(join(share, "link"))).toBe("renamed.txt");
  expect(existsSync(join(share, "hard"))).toBe(false);
  expect(statSync(join(share, "renamed.txt")).nlink).toBe(1);
  expect(statSync(join(share, "renamed.txt")).mode & 0o777).toBe(0o640);
  expect(statSync(join(share, "renamed.txt")).uid).toBe(1234);
  expect(new TextDecoder().decode(Bun.spawnSync([probe, "getxattr", join(share, "renamed.txt"), "user.arcbox"]).stdout).trim()).toBe("xattr=yes");
  expect(readFileSync(join(share, "synced.txt"), "utf8")).toBe("synced");
  expect(readFileSync(join(share, "mm.bin")).subarray(100, 120).toString()).toBe("written through mmap");
  expect(lstatSync(join(share, "fifo")).isFIFO()).toBe(true);
  expect(statSync(join(share, "suid")).mode & 0o7777).toBe(0o777);
  expect(readFileSync(join(share, "suid"), "utf8")).toBe("x\ny\n");
  expect(statSync(join(share, "suid-root")).mode & 0o7777).toBe(0o6777);
});

test("host-side edits reach the guest within the auto cache timeout", () => {
  const tenths = Number(/EDIT-SEEN-AFTER (\d+)/.exec(run.output)?.[1] ?? 999);
  expect(editSeenAt).toBeGreaterThan(0);
  expect(tenths).toBeLessThan(30); // polled every 0.1 s (plus TCG overhead): seen within ~1 s timeouts
});

test("symlinks and .. never reach outside the share", () => {
  expect(run.output).not.toContain(SECRET);
  expect(readFileSync(join(outside, "marker"), "utf8")).toBe(SECRET);
  expect(readdirSync(outside)).toEqual(["marker"]);
  // the guest's writes through those links went to the guest's own paths, if anywhere
  expect(readlinkSync(join(share, "escape-abs"))).toBe(join(outside, "marker"));
});

test("the read-only share refused every write with EROFS", () => {
  const ro = ["ro-read", "ro-write", "ro-create", "ro-touch", "ro-mkdir", "ro-rm", "ro-rename", "ro-symlink", "ro-link", "ro-chmod", "ro-xattr", "ro-open-rw", "ro-unchanged"];
  expect(failedChecks(run, ro)).toEqual([]);
  expect(readdirSync(join(root, "ro"))).toEqual(["ro.txt"]);
});

test("the stats file counts the share's traffic", () => {
  const buf = readFileSync(join(root, "rw.stats"));
  expect(buf.readUInt32LE(0)).toBe(0x31534656);
  const counter = (i: number) => Number(buf.readBigUInt64LE(8 + i * 8));
  expect(counter(0)).toBeGreaterThan(100); // requests
  expect(counter(2)).toBeGreaterThanOrEqual(big.length); // bytes read
  expect(counter(3)).toBeGreaterThanOrEqual(40 * 65536); // bytes written
  expect(counter(9)).toBe(0); // the guest powered off: disconnected
});
void REPO;
