/**
 * Other local users cannot read the daemon's logs, a container's json log or
 * daemon.json: files are 0600 (the shim's json logs 0640), the log directory 0700, and
 * a home left with 0644 files by an older version is tightened when the daemon starts.
 * Checked by reading as `nobody`, not only by looking at modes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import { run } from "../helpers/daemon.ts";

let f: BusyboxDaemon;

/** `cat` as nobody; true when the file could be read. */
async function nobodyReads(path: string): Promise<boolean> {
  return (await run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", path])).code === 0;
}

beforeAll(async () => {
  f = await startBusyboxDaemon("arcbox-e2e-perms-");
}, 120_000);

afterAll(async () => {
  await f?.dispose();
}, 120_000);

test("logs and daemon.json are for the owner only, also when an older version left them 0644", async () => {
  const { d } = f;
  // The home as `arcbox` makes it (0711: traversable, like /var/lib/arcbox), plus files
  // an older version wrote world-readable.
  chmodSync(d.home, 0o711);
  await d.arcbox(["stop"]);
  const log = join(d.home, "log");
  chmodSync(log, 0o755);
  writeFileSync(join(log, "old-service.log"), "secret\n", { mode: 0o644 });
  chmodSync(join(log, "old-service.log"), 0o644);
  writeFileSync(join(d.home, "daemon.json"), "{}\n", { mode: 0o644 });
  chmodSync(join(d.home, "daemon.json"), 0o644);
  // The check must be able to fail: as things stand, nobody can read them.
  expect(await nobodyReads(join(log, "old-service.log"))).toBe(true);
  expect(await nobodyReads(join(d.home, "daemon.json"))).toBe(true);

  await d.start();
  await d.docker(["rm", "-f", "perm"]);
  const runRes = await d.docker(["run", "--name", "perm", f.image, "echo", "container says hi"]);
  expect(runRes.stdout).toBe("container says hi\n");
  const logPath = JSON.parse((await d.docker(["inspect", "perm"])).stdout)[0].LogPath as string;

  expect(statSync(log).mode & 0o777).toBe(0o700);
  const logs = readdirSync(log).map((name) => join(log, name));
  // supervisor, apid, imaged, vmm, the guest agent, and the old file.
  expect(logs.length).toBeGreaterThanOrEqual(5);
  for (const path of [...logs, join(d.home, "daemon.json")]) {
    expect({ path, mode: (statSync(path).mode & 0o777).toString(8) }).toEqual({ path, mode: "600" });
    expect(await nobodyReads(path)).toBe(false);
  }
  expect(statSync(logPath).mode & 0o007).toBe(0);
  expect(await nobodyReads(logPath)).toBe(false);
  await d.docker(["rm", "-f", "perm"]);
}, 90_000);
