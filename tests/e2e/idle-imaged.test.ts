/**
 * imaged goes soon after its last call by default (services/imaged/main.ts,
 * IDLE_EXIT_SECONDS), also while containers run: nothing it knows lives only in its
 * memory. A fresh imaged must pick up what the last one left: the image stays in use
 * by the container that outlived it, a container removed after it left releases its
 * root filesystem, and the image can go once nothing uses it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

let d: TestDaemon;
let reg: TestRegistry;
let image: string;

beforeAll(async () => {
  reg = await startRegistry();
  image = (await pushBusybox(reg)).reference;
  // No ARCBOX_IDLE_EXIT_SECONDS: imaged's own default is under test.
  d = new TestDaemon("arcbox-idle-imaged-");
  await d.start();
}, 90_000);
afterAll(async () => {
  await d?.dispose();
  await reg?.stop();
}, 90_000);

const states = () => d.serviceStates();

const ok = async (args: string[]) => {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

async function imagedGone(): Promise<void> {
  await waitFor(
    "imaged to exit while idle",
    async () => {
      const s = await states();
      return s.imaged === "idle" || (await Bun.sleep(250), false);
    },
    90_000,
  );
}

test("imaged exits at rest while containers run, and a fresh one keeps their images' references", async () => {
  await ok(["pull", "-q", image]);
  await ok(["run", "-d", "--name", "keeper", "--network", "none", image, "sleep", "600"]);
  await ok(["run", "-d", "--rm", "--name", "passing", "--network", "none", image, "sleep", "600"]);
  await imagedGone();
  // The containers still run with imaged gone.
  expect((await ok(["ps", "--format", "{{.Names}}"])).split("\n").sort()).toEqual(["", "keeper", "passing"]);
  expect(readFileSync(join(d.home, "log", "supervisor.log"), "utf8")).not.toContain("exited unexpectedly");

  // A container stopped with imaged down: removed (--rm), its root released by a fresh imaged.
  await ok(["kill", "passing"]);
  await waitFor("the --rm container to be removed", async () => !(await ok(["ps", "-a", "--format", "{{.Names}}"])).includes("passing"));
  // The image is still in use by the running container: the new imaged knows it.
  await imagedGone();
  const rmi = await d.docker(["rmi", image]);
  expect(rmi.code).not.toBe(0);
  expect(rmi.stderr).toContain("container");
  expect(await ok(["exec", "keeper", "cat", "/proc/1/cmdline"])).toContain("sleep");

  // Once nothing uses it, it goes; and pulling and running work again from a fresh imaged.
  await ok(["rm", "-f", "keeper"]);
  await imagedGone();
  await ok(["rmi", image]);
  expect(await ok(["images", "-q"])).toBe("");
  await ok(["pull", "-q", image]);
  expect(await ok(["run", "--rm", "--network", "none", image, "echo", "again"])).toBe("again\n");
}, 240_000);
