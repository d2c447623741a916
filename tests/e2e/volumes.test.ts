/**
 * Docker volumes with the real docker CLI: create/ls/inspect/rm/prune with filters,
 * data that outlives its container, volumes in use, anonymous volumes from an image's
 * VOLUME filled with the image content (ownership, modes, whiteouts across layers),
 * tmpfs-backed local volumes, and bad input. In VM mode also: named volumes' data on
 * the engine machine's disk, through restarts, and removed there even while it is down.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { IN_VM, test } from "../helpers/engine-mode.ts";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { buildBusyboxRootfs, pushBusybox, pushImage, rawTar, tarDirectory, tarFiles } from "../helpers/test-images.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

let d: TestDaemon;
let reg: TestRegistry;
let image: string;
let busybox: string;

beforeAll(async () => {
  reg = await startRegistry();
  const root = mkdtempSync(join(tmpdir(), "arcbox-volimg-"));
  buildBusyboxRootfs(root);
  const layers = [
    tarDirectory(root),
    tarFiles({ "data/seed.txt": { content: "seed\n", mode: 0o640, uid: 1000, gid: 1000 }, "data/gone.txt": "to be whited out\n", "data/sub": { dir: true, mode: 0o750 } }),
    rawTar([
      { name: "data/.wh.gone.txt", data: "" },
      { name: "data/late.txt", data: "late\n" },
    ]),
  ];
  rmSync(root, { recursive: true, force: true });
  image = (await pushImage(reg, "voltest", "latest", { layers, config: { Cmd: ["sh"], Volumes: { "/data": {} } } })).reference;
  busybox = (await pushBusybox(reg)).reference;
  d = new TestDaemon("arcbox-e2e-vol-");
  await d.start();
  expect((await d.docker(["pull", "-q", image])).code).toBe(0);
  expect((await d.docker(["pull", "-q", busybox])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  await d.docker(["rm", "-f", "-v", "holder", "anon"]).catch(() => undefined);
  await d.dispose();
  await reg?.stop();
}, 120_000);

/** A shell script run in the engine machine (VM mode), with its output. */
async function inEngine(script: string): Promise<string> {
  const r = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "sh", "-c", script]);
  if (r.code !== 0) throw new Error(`machine exec failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A file of a volume where its data is: the host's disk, or in VM mode the machine's. */
async function volumeFile(mountpoint: string, name: string): Promise<string> {
  return IN_VM ? inEngine(`cat '${join(mountpoint, name)}'`) : readFileSync(join(mountpoint, name), "utf8");
}

async function ok(args: string[]): Promise<string> {
  const r = await d.docker(args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

test("volume create, ls with filters, inspect, rm and prune through the CLI", async () => {
  expect((await ok(["volume", "create", "--label", "env=test", "alpha"])).trim()).toBe("alpha");
  await ok(["volume", "create", "beta"]);
  expect(await ok(["volume", "create", "alpha"])).toBe("alpha\n"); // idempotent, as Docker
  const [v] = JSON.parse(await ok(["volume", "inspect", "alpha"]));
  expect(v).toMatchObject({ Name: "alpha", Driver: "local", Scope: "local", Labels: { env: "test" } });
  // In VM mode the data dir is the engine machine's, made on first use (a create boots nothing).
  if (IN_VM) expect(v.Mountpoint).toBe("/var/lib/arcbox/volumes/alpha/_data");
  else expect(existsSync(v.Mountpoint)).toBe(true);
  expect(Date.parse(v.CreatedAt)).toBeGreaterThan(0);
  expect(await ok(["volume", "ls", "-q", "--filter", "label=env=test"])).toBe("alpha\n");
  expect(await ok(["volume", "ls", "-q", "--filter", "name=bet"])).toBe("beta\n");
  expect(await ok(["volume", "ls", "--format", "{{.Driver}} {{.Name}}"])).toBe("local alpha\nlocal beta\n");
  // Named volumes are kept by a plain prune (API >= 1.42) and removed with --all.
  await ok(["volume", "prune", "-f"]);
  expect(await ok(["volume", "ls", "-q"])).toBe("alpha\nbeta\n");
  const pruned = await ok(["volume", "prune", "-f", "--all", "--filter", "label=env=test"]);
  expect(pruned).toContain("alpha");
  expect(existsSync(v.Mountpoint)).toBe(false);
  await ok(["volume", "rm", "beta"]);
  expect(await ok(["volume", "ls", "-q"])).toBe("");
}, 60_000);

test("volume prune below API 1.42 removes named volumes too, as dockerd does for old clients", async () => {
  await ok(["volume", "create", "--label", "old=api", "named-old"]);
  await ok(["volume", "create", "--label", "old=api", "named-new"]);
  const filters = encodeURIComponent(JSON.stringify({ label: ["old=api"] }));
  const now = (await (await d.api(`/v1.42/volumes/prune?filters=${filters}`, { method: "POST" })).json()) as { VolumesDeleted: string[] };
  expect(now.VolumesDeleted).toEqual([]);
  const old = await d.api(`/v1.41/volumes/prune?filters=${filters}`, { method: "POST" });
  expect(old.status).toBe(200);
  expect(((await old.json()) as { VolumesDeleted: string[] }).VolumesDeleted.sort()).toEqual(["named-new", "named-old"]);
  const explicit = await d.api(`/v1.41/volumes/prune?filters=${encodeURIComponent(JSON.stringify({ all: ["false"] }))}`, { method: "POST" });
  expect(explicit.status).toBe(200);
  expect(await ok(["volume", "ls", "-q", "--filter", "label=old=api"])).toBe("");
});

test("bad volume input gets Docker's errors", async () => {
  const bad = await d.docker(["volume", "create", "bad/name"]);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toContain("includes invalid characters for a local volume name");
  const drv = await d.docker(["volume", "create", "-d", "nfs-plugin", "x1"]);
  expect(drv.stderr).toContain('plugin "nfs-plugin" not found');
  const opt = await d.docker(["volume", "create", "--opt", "bogus=1", "x2"]);
  expect(opt.stderr).toContain('invalid option key: "bogus"');
  const missing = await d.docker(["volume", "inspect", "nope"]);
  expect(missing.stderr).toContain("no such volume");
  const res = await d.api("/volumes/nope", { method: "DELETE" });
  expect(res.status).toBe(404);
  expect((await d.api("/volumes/nope?force=1", { method: "DELETE" })).status).toBe(204);
  expect(await ok(["volume", "ls", "-q"])).toBe("");
}, 60_000);

test("a volume's data outlives its container; a volume in use cannot be removed", async () => {
  await ok(["run", "--rm", "-v", "keep:/store", image, "sh", "-c", "echo persisted > /store/f"]);
  expect(await ok(["run", "--rm", "-v", "keep:/store", image, "cat", "/store/f"])).toBe("persisted\n");
  const [v] = JSON.parse(await ok(["volume", "inspect", "keep"]));
  expect(await volumeFile(v.Mountpoint, "f")).toBe("persisted\n");
  const df = (await (await d.api("/system/df")).json()) as { Volumes: any[] };
  const usage = df.Volumes.find((x: any) => x.Name === "keep");
  expect(usage.UsageData).toEqual({ Size: expect.any(Number), RefCount: 0 });
  expect(usage.UsageData.Size).toBeGreaterThanOrEqual("persisted\n".length);
  await ok(["run", "-d", "--name", "holder", "-v", "keep:/store", image, "sleep", "60"]);
  const rm = await d.docker(["volume", "rm", "keep"]);
  expect(rm.code).not.toBe(0);
  expect(rm.stderr).toContain("volume is in use");
  // holder also got an anonymous volume for the image's VOLUME /data.
  const used = (await ok(["volume", "ls", "-q", "--filter", "dangling=false"])).trim().split("\n");
  expect(used).toContain("keep");
  expect(used).toHaveLength(2);
  await ok(["rm", "-f", "-v", "holder"]);
  expect(await ok(["volume", "ls", "-q", "--filter", "dangling=true"])).toBe("keep\n");
  await ok(["volume", "rm", "keep"]);
  expect(await ok(["volume", "ls", "-q"])).toBe("");
}, 60_000);

test("--volumes-from shares another container's volumes and binds; :ro makes them read-only", async () => {
  const bindDir = mkdtempSync(join(tmpdir(), "arcbox-volfrom-"));
  try {
    await ok(["run", "-d", "--name", "vf-src", "-v", "vfshared:/shared", "-v", `${bindDir}:/bound`, image, "sh", "-c", "echo from-src > /shared/f; echo bound > /bound/b; exec sleep 600"]);
    for (let i = 0; i < 200 && !existsSync(join(bindDir, "b")); i++) await Bun.sleep(25);
    expect(await ok(["run", "--rm", "--volumes-from", "vf-src", image, "sh", "-c", "cat /shared/f /bound/b; echo more >> /shared/f"])).toBe("from-src\nbound\n");
    const ro = await d.docker(["run", "--rm", "--volumes-from", "vf-src:ro", image, "sh", "-c", "cat /shared/f; echo x > /shared/g"]);
    expect(ro.stdout).toBe("from-src\nmore\n");
    expect(ro.code).not.toBe(0);
    expect(ro.stderr).toContain("Read-only file system");
    const missing = await d.docker(["run", "--rm", "--volumes-from", "no-such-ctr", image, "true"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("No such container: no-such-ctr");
    // -v: the image's VOLUME /data gave vf-src an anonymous volume too.
    await ok(["rm", "-f", "-v", "vf-src"]);
    await ok(["volume", "rm", "vfshared"]);
    expect((await ok(["volume", "ls", "-q"])).trim()).toBe("");
  } finally {
    rmSync(bindDir, { recursive: true, force: true });
  }
}, 90_000);

test("an image VOLUME gets an anonymous volume filled with the image content, removed by rm -v", async () => {
  const out = await ok(["run", "--name", "anon", image, "sh", "-c", "ls -ln /data | awk '{print $1, $3, $4, $9}'; cat /data/seed.txt"]);
  expect(out).toContain("-rw-r----- 1000 1000 seed.txt");
  expect(out).toContain("drwxr-x--- 0 0 sub");
  expect(out).toContain("late.txt");
  expect(out).not.toContain("gone.txt");
  expect(out).toContain("seed\n");
  const vols = (await ok(["volume", "ls", "-q"])).trim().split("\n");
  expect(vols).toHaveLength(1);
  expect(vols[0]).toMatch(/^[0-9a-f]{64}$/);
  const [anon] = JSON.parse(await ok(["volume", "inspect", vols[0]]));
  expect(anon.Labels).toEqual({ "com.docker.volume.anonymous": "" });
  await ok(["rm", "-v", "anon"]);
  expect(await ok(["volume", "ls", "-q"])).toBe("");
  // A named volume at an image path is filled the same way on first use only.
  expect(await ok(["run", "--rm", "-v", "named:/data", image, "sh", "-c", "cat /data/seed.txt; rm /data/seed.txt"])).toBe("seed\n");
  expect(await ok(["run", "--rm", "-v", "named:/data", image, "ls", "/data"])).not.toContain("seed.txt");
  await ok(["volume", "rm", "named"]);
  // A single-layer image is copied from directly.
  expect(await ok(["run", "--rm", "-v", "etcvol:/etc", busybox, "head", "-1", "/etc/passwd"])).toBe("root:x:0:0:root:/root:/bin/sh\n");
  await ok(["volume", "rm", "etcvol"]);
}, 60_000);

test("copy-up resolves the mount target inside the image: a symlink to / or up out of it never reaches the host's files", async () => {
  const root = mkdtempSync(join(tmpdir(), "arcbox-volesc-"));
  buildBusyboxRootfs(root);
  // `/nl` leads to a directory whose name ends in a newline, beside a link `/d -> /etc`:
  // a resolved path that lost its newline would name the link.
  const layers = [
    tarDirectory(root),
    tarFiles({ "etc/image-only": "image\n", abs: { symlink: "/etc" }, "a/b/up": { symlink: "../../../../../../etc" }, "d\n/image-only": "image\n", d: { symlink: "/etc" }, nl: { symlink: "/d\n" } }),
  ];
  rmSync(root, { recursive: true, force: true });
  const esc = (await pushImage(reg, "volesc", "latest", { layers, config: { Cmd: ["sh"] } })).reference;
  expect((await d.docker(["pull", "-q", esc])).code).toBe(0);
  // The runtime's own /etc files (hosts, hostname, resolv.conf) are left out: which of
  // them show over a volume mounted through a link is another matter.
  const listing = async (args: string[]) => (await ok(["run", "--rm", ...args])).split("\n").filter((n) => n && !["hosts", "hostname", "resolv.conf"].includes(n));
  const imageEtc = await listing([esc, "ls", "-A", "/etc"]);
  expect(imageEtc).toContain("image-only");
  for (const target of ["/abs", "/a/b/up"]) {
    // Before: fsd (or the engine machine's agent) followed the link on its own side and
    // filled the volume from the host's /etc.
    expect(await listing(["-v", `escvol:${target}`, esc, "ls", "-A", `${target}/`])).toEqual(imageEtc);
    await ok(["volume", "rm", "escvol"]);
  }
  expect(await listing(["-v", "escvol:/nl", esc, "ls", "-A", "/nl/"])).toEqual(["image-only"]);
  await ok(["volume", "rm", "escvol"]);
}, 120_000);

test("copy-up keeps xattrs: a file's capabilities reach the new volume, as Docker's copy-up keeps them", async () => {
  const root = mkdtempSync(join(tmpdir(), "arcbox-volcap-"));
  buildBusyboxRootfs(root);
  // cap_net_raw+ep: VFS_CAP_REVISION_2 with the effective bit, then permitted bit 13.
  const cap = String.fromCharCode(1, 0, 0, 2, 0, 0x20, 0, 0, ...new Array(12).fill(0));
  const layers = [
    tarDirectory(root),
    rawTar([
      { name: "caps/", type: "5", mode: 0o755 },
      { name: "caps/tool", data: "tool\n", mode: 0o755, pax: { "SCHILY.xattr.security.capability": cap } },
    ]),
  ];
  rmSync(root, { recursive: true, force: true });
  const capImage = (await pushImage(reg, "volcap", "latest", { layers, config: { Cmd: ["sh"] } })).reference;
  expect((await d.docker(["pull", "-q", capImage])).code).toBe(0);
  // docker cp archives a file's capabilities (its only xattr Docker carries).
  const archived = async (ctr: string) => {
    const r = await d.docker(["cp", `${ctr}:/caps/tool`, "-"]);
    expect(r.code).toBe(0);
    return r.stdout.includes("SCHILY.xattr.security.capability");
  };
  await ok(["run", "-d", "--name", "cap-plain", capImage, "sleep", "600"]);
  expect(await archived("cap-plain")).toBe(true);
  // Before: the copy-up used busybox's `cp -a`, which drops xattrs.
  await ok(["run", "-d", "--name", "cap-vol", "-v", "capvol:/caps", capImage, "sleep", "600"]);
  expect(await ok(["exec", "cap-vol", "cat", "/caps/tool"])).toBe("tool\n");
  expect(await archived("cap-vol")).toBe(true);
  await ok(["rm", "-f", "cap-plain", "cap-vol"]);
  await ok(["volume", "rm", "capvol"]);
}, 120_000);

test("a local volume with o=bind shows a host directory", async () => {
  const hostDir = mkdtempSync(join(tmpdir(), "arcbox-bindvol-"));
  try {
    await ok(["volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", `device=${hostDir}`, "hostdir"]);
    await ok(["run", "--rm", "-v", "hostdir:/mnt", image, "sh", "-c", "echo through-the-volume > /mnt/out"]);
    expect(readFileSync(join(hostDir, "out"), "utf8")).toBe("through-the-volume\n");
    await ok(["volume", "rm", "hostdir"]);
    // Removing the volume never deletes the user's directory.
    expect(existsSync(join(hostDir, "out"))).toBe(true);
  } finally {
    rmSync(hostDir, { recursive: true, force: true });
  }
}, 60_000);

test("a local volume with tmpfs options is mounted while used and unmounted after", async () => {
  await ok(["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=2m", "scratch"]);
  const [v] = JSON.parse(await ok(["volume", "inspect", "scratch"]));
  expect(v.Options).toEqual({ type: "tmpfs", device: "tmpfs", o: "size=2m" });
  const out = await ok(["run", "--rm", "-v", "scratch:/t", image, "sh", "-c", "grep ' /t ' /proc/mounts"]);
  expect(out).toMatch(/^tmpfs \/t tmpfs .*size=2048k/m);
  expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(v.Mountpoint);
  // One tmpfs for all the volume's containers while any uses it; its files go with the last.
  await ok(["run", "-d", "--name", "tmpfs-holder", "-v", "scratch:/t", image, "sh", "-c", "echo kept > /t/f; sleep 600"]);
  expect(await ok(["run", "--rm", "-v", "scratch:/t", image, "sh", "-c", "for i in $(seq 50); do [ -f /t/f ] && break; sleep 0.2; done; cat /t/f"])).toBe("kept\n");
  await ok(["rm", "-f", "tmpfs-holder"]);
  expect(await ok(["run", "--rm", "-v", "scratch:/t", image, "ls", "-A", "/t"])).toBe("");
  await ok(["volume", "rm", "scratch"]);
}, 60_000);

/** VM mode (issue 13): named volumes' data is on the engine machine's disk, not the host's. */
if (IN_VM) {
  const engineState = async () => /^arcbox-engine\s+(\S+)/m.exec((await d.arcbox(["machine", "ls"])).stdout)?.[1];
  const leftovers = () => {
    const dir = join(d.home, "data", "vmm", "engine-leftovers");
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  test("VM mode: a named volume lives on the engine machine's disk, filled there with owners and modes", async () => {
    expect(await ok(["run", "--rm", "-v", "vmdisk:/data", image, "sh", "-c", "echo mine > /data/mine"])).toBe("");
    const [v] = JSON.parse(await ok(["volume", "inspect", "vmdisk"]));
    expect(v.Mountpoint).toBe("/var/lib/arcbox/volumes/vmdisk/_data");
    // Nothing on the host: neither at the Mountpoint nor under fsd's data dir.
    expect(existsSync(v.Mountpoint)).toBe(false);
    expect(existsSync(join(d.home, "data", "fsd", "volumes", "vmdisk"))).toBe(false);
    // The machine's own disk holds it (not a share of the host), filled from the image's layers.
    expect(await inEngine(`df -P '${v.Mountpoint}' | tail -1`)).not.toContain("arcbox-host");
    const listing = await inEngine(`cd '${v.Mountpoint}' && ls -ln . | awk '{print $1, $3, $4, $9}'; cat seed.txt mine`);
    expect(listing).toContain("-rw-r----- 1000 1000 seed.txt");
    expect(listing).toContain("drwxr-x--- 0 0 sub");
    expect(listing).toContain("late.txt");
    expect(listing).not.toContain("gone.txt");
    expect(listing).toContain("seed\nmine\n");
    // Sizes come from the machine.
    const df = (await (await d.api("/system/df")).json()) as { Volumes: { Name: string; UsageData: { Size: number } }[] };
    expect(df.Volumes.find((x) => x.Name === "vmdisk")?.UsageData.Size).toBeGreaterThanOrEqual("seed\nmine\nlate\n".length);
    // docker cp of an exited container reaches the volume in the machine too.
    await ok(["run", "--name", "vmdisk-cp", "-v", "vmdisk:/data", image, "true"]);
    expect(await ok(["cp", "vmdisk-cp:/data/mine", "-"])).toContain("mine\n");
    await ok(["rm", "vmdisk-cp"]);
    // docker volume rm frees it in the machine.
    await ok(["volume", "rm", "vmdisk"]);
    expect(await inEngine("ls -A /var/lib/arcbox/volumes")).not.toContain("vmdisk");
  });

  test("VM mode: a volume survives restarts of the daemon and the engine machine; rm while it is down waits for its boot", async () => {
    await ok(["run", "--rm", "-v", "vmkeep:/store", busybox, "sh", "-c", "echo kept > /store/f"]);
    await d.stop();
    await d.start();
    expect(await ok(["run", "--rm", "-v", "vmkeep:/store", busybox, "cat", "/store/f"])).toBe("kept\n");
    expect((await d.arcbox(["machine", "stop", "arcbox-engine"])).code).toBe(0);
    expect(await engineState()).toBe("stopped");
    // The next use boots the machine again: the data is still on its disk.
    expect(await ok(["run", "--rm", "-v", "vmkeep:/store", busybox, "cat", "/store/f"])).toBe("kept\n");
    expect(await inEngine("cat /var/lib/arcbox/volumes/vmkeep/_data/f")).toBe("kept\n");
    // Removed while the machine is down: no boot; done at its next boot, before other work.
    expect((await d.arcbox(["machine", "stop", "arcbox-engine"])).code).toBe(0);
    await ok(["volume", "rm", "vmkeep"]);
    expect((await ok(["volume", "ls", "-q"])).split("\n")).not.toContain("vmkeep");
    expect(await engineState()).toBe("stopped");
    expect(leftovers()).toContain("vmkeep.volume");
    // Created again under the same name before the boot: a fresh, empty volume.
    await ok(["volume", "create", "vmkeep"]);
    expect(await engineState()).toBe("stopped");
    expect(await ok(["run", "--rm", "-v", "vmkeep:/store", busybox, "ls", "-A", "/store"])).toBe("");
    expect(leftovers()).toEqual([]);
    await ok(["volume", "rm", "vmkeep"]);
    expect(await inEngine("ls -A /var/lib/arcbox/volumes")).not.toContain("vmkeep");
  });
}
