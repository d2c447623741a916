/**
 * A guest that knows more inodes than arcbox-virtiofsd may open files. The server runs
 * with its soft RLIMIT_NOFILE lowered to 256, and the guest creates, lists, reads,
 * stats, renames and links ~2,800 inodes (guest-made and host-made trees), so the server
 * must close the fds of cold inodes and reopen them by file handle. Without that, the
 * guest's creates and lookups fail with EMFILE once ~250 inodes are known.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { bootGuest, failedChecks, type GuestRun, startVirtiofsd } from "../helpers/virtiofs-vm.ts";

const root = mkdtempSync("/tmp/arcbox-vfs-evict-");
const share = join(root, "share");
const FD_LIMIT = 256;
const DIRS = 30,
  FILES = 40,
  HOST_FILES = 1500;
let server: Subprocess;
let run: GuestRun;

/** The concatenation, in byte order of their paths, of every host-made file under h/. */
const hostTreeMd5 = () => {
  const names = Array.from({ length: HOST_FILES }, (_, i) => `h/s${i % 10}/file-${i}`).sort();
  const h = createHash("md5");
  for (const n of names) h.update(readFileSync(join(share, n)));
  return h.digest("hex");
};

const script = `
export M=/mnt/rw LC_ALL=C
mkdir -p $M
mount -t virtiofs share $M && echo "CHECK mount ok"
check() { name=$1; shift; if out=$("$@" 2>&1); then echo "CHECK $name ok"; else echo "CHECK $name FAIL $(echo "$out" | tail -3)"; fi; }
# ${DIRS * FILES} files in ${DIRS} directories the guest makes and keeps in its inode cache
check create sh -c 'mkdir $M/t && for d in $(seq 1 ${DIRS}); do mkdir $M/t/d$d || exit 1; for f in $(seq 1 ${FILES}); do echo "$d/$f" > $M/t/d$d/f$f || exit 1; done; done'
check count sh -c '[ "$(find $M/t -type f | wc -l)" = ${DIRS * FILES} ]'
# every file again: most of their fds were closed since
check read-back sh -c 'for d in $(seq 1 ${DIRS}); do [ "$(cat $M/t/d$d/f1 $M/t/d$d/f${FILES})" = "$(printf "%s\\n%s" $d/1 $d/${FILES})" ] || exit 1; done'
check read-all sh -c '[ "$(cat $M/t/d*/f* | wc -l)" = ${DIRS * FILES} ]'
check stat-all sh -c '[ "$(stat -c %s $M/t/d*/f* | sort -u | tr "\\n" " ")" = "4 5 6 " ]'
# the host-made tree: looked up through READDIRPLUS, then read
check host-list sh -c '[ "$(ls -l $M/h/s* | grep -c file-)" = ${HOST_FILES} ]'
echo "HOSTMD5 $(find $M/h -type f | sort | xargs cat | md5sum | cut -d" " -f1)"
# operations on inodes evicted long ago: the first directory and its first file
check rename-dir sh -c 'mv $M/t/d1 $M/t/moved && [ "$(cat $M/t/moved/f2)" = 1/2 ]'
check hardlink sh -c 'ln $M/t/d2/f1 $M/t/link && [ "$(stat -c %h $M/t/d2/f1)" = 2 ]'
check chmod sh -c 'chmod 600 $M/t/d3/f1 && [ "$(stat -c %a $M/t/d3/f1)" = 600 ]'
check write-evicted sh -c 'echo appended >> $M/t/d4/f1 && [ "$(tail -1 $M/t/d4/f1)" = appended ]'
# a file the guest holds open, unlinked while its inode may be evicted: stat and read still work
check open-unlinked sh -c 'exec 3<$M/t/d5/f1; rm $M/t/d5/f1; cat $M/t/d6/f* $M/t/d7/f* > /dev/null; sleep 1.2; [ "$(stat -L -c %s /proc/self/fd/3)" = 4 ] && [ "$(cat <&3)" = 5/1 ]'
umount $M && echo "CHECK umount ok"
`;

beforeAll(async () => {
  for (let i = 0; i < 10; i++) mkdirSync(join(share, "h", `s${i}`), { recursive: true });
  for (let i = 0; i < HOST_FILES; i++) writeFileSync(join(share, "h", `s${i % 10}`, `file-${i}`), `host file ${i}\n`);
  server = await startVirtiofsd({ socket: join(root, "fs.sock"), dir: share, stats: join(root, "fs.stats"), maxOpenFiles: FD_LIMIT });
  run = await bootGuest({ shares: [{ tag: "share", socket: join(root, "fs.sock") }], script });
  if (process.env.ARCBOX_TEST_VERBOSE) console.log(run.output);
}, 300_000);

afterAll(() => {
  server?.kill();
  rmSync(root, { recursive: true, force: true });
});

test("every operation in the guest succeeded with more inodes than open files", () => {
  const expected = ["mount", "create", "count", "read-back", "read-all", "stat-all", "host-list", "rename-dir", "hardlink", "chmod", "write-evicted", "open-unlinked", "umount"];
  const failed = failedChecks(run, expected);
  if (failed.length) console.log(run.output);
  expect(failed).toEqual([]);
  expect(run.exitCode).toBe(0);
});

test("the guest read the host's tree intact", () => {
  expect(/HOSTMD5 ([0-9a-f]{32})/.exec(run.output)?.[1]).toBe(hostTreeMd5());
});

test("the guest's tree landed on the host", () => {
  expect(readFileSync(join(share, "t/d7/f13"), "utf8")).toBe("7/13\n");
  expect(readFileSync(join(share, "t/moved/f2"), "utf8")).toBe("1/2\n");
  expect(statSync(join(share, "t/d2/f1")).nlink).toBe(2);
  expect(statSync(join(share, "t/d3/f1")).mode & 0o777).toBe(0o600);
  expect(readFileSync(join(share, "t/d4/f1"), "utf8")).toBe("4/1\nappended\n");
});

test("the server evicted inode fds and stayed under its limit", () => {
  const buf = readFileSync(join(root, "fs.stats"));
  const counter = (i: number) => Number(buf.readBigUInt64LE(8 + i * 8));
  expect(counter(6)).toBeGreaterThan(DIRS * FILES + HOST_FILES); // lookups
  expect(counter(12)).toBeGreaterThan(1000); // evictions
  expect(counter(11)).toBeLessThan(FD_LIMIT); // inode fds open at the end
});
