/**
 * VM mode (issue 13): a daemon with `"vm": true` in daemon.json runs every container in
 * the engine machine (a qemu VM, TCG here), driven through the real docker CLI. One
 * daemon and one boot for the whole file: a TCG boot takes 60-100 s on a loaded host.
 * Images are imported on the host (imaged) and reach the machine as layer images over
 * VirtioFS; stdio, logs and exit codes come back as in host mode.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";
import { waitForDeath } from "../helpers/wait.ts";

const IMAGE = "vm-busybox:1";
const LONG = { timeoutMs: 300_000 };
let d: TestDaemon;
let firstRunMs = 0;

/** Runs a command in the engine machine itself (its own processes, not a container's). */
async function inEngine(script: string): Promise<string> {
  const r = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "sh", "-c", script], LONG);
  if (r.code !== 0) throw new Error(`machine exec failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  d = new TestDaemon("arcbox-vm-mode-", {}, undefined, { engine: "vm" });
  const started = performance.now();
  await d.start();
  await d.importBusybox(IMAGE);
  // The first run waits for the engine machine, which vmm boots at daemon start.
  const r = await d.docker(["run", "--rm", IMAGE, "true"], { timeoutMs: 540_000 });
  if (r.code !== 0) {
    const vmmLog = Bun.spawnSync(["tail", "-n", "15", join(d.home, "log", "vmm.log")]).stdout.toString();
    throw new Error(`first docker run failed (${r.code}): ${r.stderr}\nvmm.log:\n${vmmLog}`);
  }
  firstRunMs = performance.now() - started;
  console.log(`vm-mode: arcbox start to the first successful docker run: ${Math.round(firstRunMs)} ms`);
}, 600_000);

afterAll(async () => {
  await d?.dispose();
}, 180_000);

describe("VM mode: containers run in the engine machine", () => {
  test("the container runs on the machine's kernel, not the host's", async () => {
    const r = await d.docker(["run", "--rm", IMAGE, "uname", "-r"], LONG);
    expect(r.code).toBe(0);
    const host = Bun.spawnSync(["uname", "-r"]).stdout.toString().trim();
    expect(r.stdout.trim()).not.toBe(host);
    expect(r.stdout.trim()).toBe((await inEngine("uname -r")).trim());
    // The machine's clock follows the host's (the agent stamps starts and exits with it).
    const before = Date.now() / 1000;
    const clock = await d.docker(["run", "--rm", IMAGE, "date", "+%s"], LONG);
    expect(Number(clock.stdout.trim())).toBeGreaterThanOrEqual(Math.floor(before) - 5);
    expect(Number(clock.stdout.trim())).toBeLessThanOrEqual(Date.now() / 1000 + 5);
    // The engine machine is listed as such.
    const ls = await d.arcbox(["machine", "ls"]);
    expect(ls.stdout).toMatch(/^arcbox-engine\s+running\s/m);
  }, 300_000);

  test("docker run --rm: stdout, stderr and the exit code", async () => {
    const ok = await d.docker(["run", "--rm", IMAGE, "echo", "hi"], LONG);
    expect(ok).toMatchObject({ code: 0, stdout: "hi\n" });
    const fail = await d.docker(["run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"], LONG);
    expect(fail.code).toBe(3);
    expect(fail.stdout).toBe("out\n");
    expect(fail.stderr).toBe("err\n");
    // --rm removed it.
    expect((await d.docker(["ps", "-aq"])).stdout.trim()).toBe("");
  }, 300_000);

  test("the engine machine runs containers with crun: errors, signals, pause, top, update", async () => {
    // The agent chose crun (C, no Go start under TCG) and says so: the binary behind the
    // runtime name "runc", which containers keep (as Docker Desktop names its own).
    const info = JSON.parse((await d.docker(["info", "--format", "{{json .}}"])).stdout);
    expect(info.DefaultRuntime).toBe("runc");
    expect(info.Runtimes).toEqual({ runc: { path: "crun" } });
    const running = await inEngine("ls /var/lib/arcbox/data/vmm/host/runc; cat /proc/mounts");
    expect(running).toMatch(/^cgroup2 \/sys\/fs\/cgroup cgroup2 /m);
    // crun's start failures end as runc's do: docker run's 127 and 126.
    const missing = await d.docker(["run", "--rm", IMAGE, "no-such-command"], LONG);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/executable file not found in \$PATH/);
    expect((await d.docker(["run", "--rm", IMAGE, "/etc/passwd"], LONG)).code).toBe(126);
    const run = await d.docker(["run", "-d", "--name", "vm-crun", IMAGE, "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 1; done"], LONG);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    // crun keeps its state in the agent's runtime root, as runc did.
    expect(await inEngine(`cat /var/lib/arcbox/data/vmm/host/runc/${id}/status`)).toMatch(/\S/);
    expect((await d.docker(["top", "vm-crun"], LONG)).stdout).toMatch(/trap 'exit 9' USR1/);
    expect((await d.docker(["pause", "vm-crun"], LONG)).code).toBe(0);
    expect(JSON.parse((await d.docker(["inspect", "vm-crun"])).stdout)[0].State.Status).toBe("paused");
    expect(await inEngine(`cat /sys/fs/cgroup/arcbox/${id}/cgroup.freeze`)).toBe("1\n");
    expect((await d.docker(["unpause", "vm-crun"], LONG)).code).toBe(0);
    expect(JSON.parse((await d.docker(["inspect", "vm-crun"])).stdout)[0].State.Status).toBe("running");
    expect((await d.docker(["update", "--memory", "64m", "vm-crun"], LONG)).code).toBe(0);
    expect(await inEngine(`cat /sys/fs/cgroup/arcbox/${id}/memory.max`)).toBe(`${64 * 1024 * 1024}\n`);
    expect((await d.docker(["kill", "-s", "USR1", "vm-crun"], LONG)).code).toBe(0);
    expect((await d.docker(["wait", "vm-crun"], LONG)).stdout.trim()).toBe("9");
    expect((await d.docker(["rm", "vm-crun"], LONG)).code).toBe(0);
  }, 300_000);

  test("stdin reaches the container and its end closes it (docker run -i)", async () => {
    const r = await d.docker(["run", "-i", "--rm", IMAGE, "sh", "-c", "cat; echo done"], { ...LONG, stdin: "line 1\nline 2\n" });
    expect(r).toMatchObject({ code: 0, stdout: "line 1\nline 2\ndone\n" });
  }, 300_000);

  test("docker run -d, logs, exec, stop, rm", async () => {
    const run = await d.docker(["run", "-d", "--name", "vm-web", IMAGE, "sh", "-c", "echo started; echo warn >&2; trap 'echo bye; exit 0' TERM; while true; do sleep 1; done"], LONG);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    // The json-file log is written in the machine, into apid's directory on the host.
    let logs = await d.docker(["logs", "vm-web"]);
    // The shim reads stdout and stderr apart: wait for both lines, not just the first.
    for (let i = 0; i < 50 && !(logs.stdout.includes("started") && logs.stderr.includes("warn")); i++) {
      await Bun.sleep(200);
      logs = await d.docker(["logs", "vm-web"]);
    }
    expect(logs.stdout).toBe("started\n");
    expect(logs.stderr).toBe("warn\n");
    // The container's root is an overlay on the loop-mounted layer image in the machine.
    const mounts = await inEngine("cat /proc/mounts");
    expect(mounts).toMatch(/^\/dev\/loop\d+ \/run\/arcbox\/layers\/[0-9a-f]{64} squashfs ro/m);
    expect(mounts).toMatch(/^arcbox-imaged \/run\/arcbox\/imaged virtiofs ro/m);

    const exec = await d.docker(["exec", "vm-web", "sh", "-c", "echo from-exec; exit 5"], LONG);
    expect(exec).toMatchObject({ code: 5, stdout: "from-exec\n" });
    const execIn = await d.docker(["exec", "-i", "vm-web", "cat"], { ...LONG, stdin: "piped\n" });
    expect(execIn).toMatchObject({ code: 0, stdout: "piped\n" });

    expect((await d.docker(["stop", "-t", "30", "vm-web"], LONG)).code).toBe(0);
    const state = JSON.parse((await d.docker(["inspect", "vm-web"])).stdout)[0].State;
    expect(state).toMatchObject({ Status: "exited", Running: false, ExitCode: 0 });
    expect((await d.docker(["logs", "vm-web"])).stdout).toBe("started\nbye\n");

    expect((await d.docker(["rm", "vm-web"], LONG)).code).toBe(0);
    expect((await d.docker(["inspect", id])).code).not.toBe(0);
    // The machine keeps the layer mounted for the image's next container (it goes with
    // the image or after idling a while), and the host socket is gone.
    expect(await inEngine("cat /proc/mounts")).toMatch(/ \/run\/arcbox\/layers\/[0-9a-f]{64} squashfs /);
    expect(readdirSync(join(d.home, "run", "io"))).toEqual([]);
  }, 300_000);

  test("a layer stays mounted between runs of one image and is released by docker rmi", async () => {
    const other = "vm-other:1";
    const root = mkdtempSync(join(tmpdir(), "arcbox-vm-rootfs-"));
    try {
      buildBusyboxRootfs(root);
      writeFileSync(join(root, "other.txt"), "a layer of its own\n");
      const tar = Bun.spawnSync(["tar", "--numeric-owner", "-C", root, "-cf", "-", "."]).stdout;
      const imp = Bun.spawn(["docker", "-H", d.dockerHost, "import", "-", other], { stdin: tar, stdout: "pipe", stderr: "pipe" });
      expect(await imp.exited).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    const layer = JSON.parse((await d.docker(["inspect", other])).stdout)[0].RootFS.Layers[0].replace("sha256:", "");
    // The mount's id in the machine's mount table: a new mount gets a new one.
    const mountId = async () =>
      (await inEngine("cat /proc/self/mountinfo"))
        .split("\n")
        .find((l) => l.split(" ")[4] === `/run/arcbox/layers/${layer}`)
        ?.split(" ")[0];
    expect(await mountId()).toBeUndefined();
    expect((await d.docker(["run", "--rm", other, "cat", "/other.txt"], LONG)).stdout).toBe("a layer of its own\n");
    const first = await mountId();
    expect(first).toBeDefined();
    expect((await d.docker(["run", "--rm", other, "true"], LONG)).code).toBe(0);
    expect(await mountId()).toBe(first);
    // The image goes: so does its layer, though no container ever idled it out, and
    // before rmi answers (apid names the removed layers to the machine: no waiting for
    // the share's name cache to forget the file).
    expect((await d.docker(["rmi", other], LONG)).code).toBe(0);
    expect(await mountId()).toBeUndefined();
    // The other image's layer is still there.
    expect(await inEngine("cat /proc/mounts")).toMatch(/ \/run\/arcbox\/layers\/[0-9a-f]{64} squashfs /);
  }, 300_000);

  test("bind mounts and named volumes reach the machine through VirtioFS", async () => {
    const dir = mkdtempSync(join(tmpdir(), "arcbox-vm-bind-"));
    try {
      writeFileSync(join(dir, "in.txt"), "from the host\n");
      const bind = await d.docker(["run", "--rm", "-v", `${dir}:/x`, IMAGE, "sh", "-c", "cat /x/in.txt; echo from-container > /x/out.txt"], LONG);
      expect(bind).toMatchObject({ code: 0, stdout: "from the host\n" });
      expect(readFileSync(join(dir, "out.txt"), "utf8")).toBe("from-container\n");
      const ro = await d.docker(["run", "--rm", "-v", `${dir}:/x:ro`, IMAGE, "sh", "-c", "echo no > /x/ro.txt"], LONG);
      expect(ro.code).not.toBe(0);
      expect(ro.stderr).toMatch(/Read-only file system/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await d.docker(["volume", "create", "vm-vol"])).code).toBe(0);
    expect((await d.docker(["run", "--rm", "-v", "vm-vol:/data", IMAGE, "sh", "-c", "echo kept > /data/f"], LONG)).code).toBe(0);
    expect(await d.docker(["run", "--rm", "-v", "vm-vol:/data", IMAGE, "cat", "/data/f"], LONG)).toMatchObject({ code: 0, stdout: "kept\n" });
    expect((await d.docker(["volume", "rm", "vm-vol"])).code).toBe(0);
  }, 300_000);

  test("files are read in the machine; the engine machine's name is reserved", async () => {
    // (Networking, published ports included: vm-mode-net.test.ts. The rest of docker cp,
    // export, diff and commit: vm-mode-files.test.ts.) A container's files are read in
    // the machine, even before its first start.
    expect((await d.docker(["create", "--name", "vm-files", IMAGE, "true"], LONG)).code).toBe(0);
    const copied = join(tmpdir(), `vm-mode-busybox-${process.pid}`);
    try {
      expect((await d.docker(["cp", "vm-files:/bin/busybox", copied], LONG)).code).toBe(0);
      expect(statSync(copied).size).toBeGreaterThan(100_000);
    } finally {
      rmSync(copied, { force: true });
    }
    expect(await d.docker(["diff", "vm-files"], LONG)).toMatchObject({ code: 0, stdout: "" });
    expect((await d.docker(["rm", "vm-files"], LONG)).code).toBe(0);
    const reserved = await d.arcbox(["machine", "create", "arcbox-engine", "--no-start"]);
    expect(reserved.code).not.toBe(0);
    expect(reserved.stderr).toMatch(/reserved for the engine machine/);
  }, 300_000);

  test("the engine machine and its containers keep running through kill -9 of vmm", async () => {
    const run = await d.docker(["run", "-d", "--name", "vm-keep", IMAGE, "sh", "-c", "trap 'exit 7' TERM; echo up; while true; do sleep 1; done"], LONG);
    expect(run.code).toBe(0);
    const qemuPid = () => readFileSync(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid"), "utf8").trim();
    const before = qemuPid();
    const vmmPid = Number(/^vmm\s+(?:ready|running)\s+(\d+)/m.exec((await d.arcbox(["status"])).stdout)?.[1]);
    expect(vmmPid).toBeGreaterThan(0);
    process.kill(vmmPid, "SIGKILL");
    await waitForDeath(vmmPid);
    // The next calls reach a new vmm, which adopts the VM (no new boot) and its agent.
    const exec = await d.docker(["exec", "vm-keep", "echo", "still here"], LONG);
    expect(exec).toMatchObject({ code: 0, stdout: "still here\n" });
    expect(qemuPid()).toBe(before);
    expect((await d.docker(["stop", "-t", "30", "vm-keep"], LONG)).code).toBe(0);
    expect(JSON.parse((await d.docker(["inspect", "vm-keep"])).stdout)[0].State.ExitCode).toBe(7);
    expect((await d.docker(["logs", "vm-keep"])).stdout).toBe("up\n");
    expect((await d.docker(["rm", "vm-keep"], LONG)).code).toBe(0);
  }, 400_000);

  test("memory a container used goes back to the host after it exits (free page reporting)", async () => {
    const pid = Number(readFileSync(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid"), "utf8").trim());
    // qemu's PSS, and its shared memory: the guest's RAM (a memfd), in MiB.
    const mem = () => {
      const t = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const mib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(t)?.[1]) / 1024;
      return { pss: mib("Pss"), ram: mib("Pss_Shmem") };
    };
    const before = mem();
    // 320 MiB of 1 MiB tmpfs files with a page of a named volume's file after each: the
    // container's memory is freed in pieces smaller than 2 MiB (the volume's pages stay
    // cached in the machine), which 2 MiB free page reporting never hands back.
    const fill = "i=0; while [ $i -lt 320 ]; do printf '%1048576s' '' > /hold/$i; echo x > /v/$i; i=$((i+1)); done; echo filled; exec sleep 600";
    expect((await d.docker(["run", "-d", "--name", "vm-mem", "--tmpfs", "/hold:size=400m", "-v", "vm-mem:/v", IMAGE, "sh", "-c", fill], LONG)).code).toBe(0);
    const logs = Bun.spawn(["docker", "-H", d.dockerHost, "logs", "-f", "vm-mem"], { stdout: "pipe", stderr: "ignore" });
    let out = "";
    for await (const chunk of logs.stdout) if ((out += new TextDecoder().decode(chunk)).includes("filled")) break;
    logs.kill();
    expect(out).toContain("filled");
    const held = mem();
    expect(held.ram - before.ram).toBeGreaterThan(250);
    expect((await d.docker(["rm", "-f", "vm-mem"], LONG)).code).toBe(0);
    // The guest reports free pages 2 s after they are freed, in passes that cover its
    // free lists within ~30 s; qemu punches them out of the memfd.
    const near = (now: number, then: number, slack: number) => now <= then + Math.max(then * 0.1, slack);
    let after = mem();
    for (let t = 0; t < 90 && !(near(after.ram, before.ram, 32) && near(after.pss, before.pss, 48)); t++) {
      await Bun.sleep(1000);
      after = mem();
    }
    console.log(
      `vm-mode: qemu PSS ${before.pss.toFixed(0)} MiB before (guest RAM ${before.ram.toFixed(0)}), ${held.pss.toFixed(0)} (${held.ram.toFixed(0)}) with 320 MiB held, ${after.pss.toFixed(0)} (${after.ram.toFixed(0)}) after exit`,
    );
    expect(near(after.ram, before.ram, 32)).toBe(true);
    expect(near(after.pss, before.pss, 48)).toBe(true);
    await d.docker(["volume", "rm", "vm-mem"], LONG);
  }, 400_000);

  test("timing of docker run --rm in VM mode (TCG)", async () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      expect((await d.docker(["run", "--rm", IMAGE, "true"], LONG)).code).toBe(0);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(`vm-mode: docker run --rm true: median ${Math.round(times[1]!)} ms (${times.map(Math.round).join(", ")}); first run after start ${Math.round(firstRunMs)} ms`);
  }, 300_000);
});

describe("VM mode: the engine machine dies", () => {
  test("its containers are reported as exited and the next docker run boots it again", async () => {
    // Two of them: after the reboot their deletes race the next run's create (each
    // delete releases the layer mounts no overlay lists: it once took the new one's).
    for (const name of ["vm-crash", "vm-crash2"]) {
      const run = await d.docker(["run", "-d", "--name", name, IMAGE, "sh", "-c", "while true; do sleep 1; done"], LONG);
      expect(run.code).toBe(0);
    }
    const pid = Number(readFileSync(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid"), "utf8").trim());
    process.kill(pid, "SIGKILL");
    type State = { Running: boolean; ExitCode: number };
    let states: State[] = [{ Running: true, ExitCode: 0 }];
    for (let i = 0; i < 150 && states.some((s) => s.Running); i++) {
      await Bun.sleep(200);
      states = (JSON.parse((await d.docker(["inspect", "vm-crash", "vm-crash2"])).stdout) as { State: State }[]).map((c) => c.State);
    }
    expect(states).toMatchObject([
      { Running: false, ExitCode: 255 },
      { Running: false, ExitCode: 255 },
    ]);
    const again = await d.docker(["run", "--rm", IMAGE, "echo", "back"], { timeoutMs: 400_000 });
    expect(again).toMatchObject({ code: 0, stdout: "back\n" });
    expect(Number(readFileSync(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid"), "utf8").trim())).not.toBe(pid);
    expect((await d.docker(["rm", "vm-crash", "vm-crash2"], LONG)).code).toBe(0);
  }, 500_000);

  test("an exited container is listed, inspected, logged and removed without booting it", async () => {
    const run = await d.docker(["run", "--name", "vm-idle-rm", IMAGE, "sh", "-c", "echo bye; echo data > /file"], LONG);
    expect(run).toMatchObject({ code: 0, stdout: "bye\n" });
    const id = (await d.docker(["inspect", "-f", "{{.Id}}", "vm-idle-rm"])).stdout.trim();
    // Its upper dir is on the machine's disk.
    expect(await inEngine("ls /var/lib/arcbox/data/vmm/host/rootfs")).toContain(id);
    expect((await d.arcbox(["machine", "stop", "arcbox-engine"], LONG)).code).toBe(0);
    const stopped = /^arcbox-engine\s+stopped\s/m;
    expect((await d.arcbox(["machine", "ls"])).stdout).toMatch(stopped);
    expect((await d.docker(["ps", "-a", "--filter", "name=vm-idle-rm", "--format", "{{.Status}}"])).stdout).toMatch(/^Exited \(0\)/);
    expect(JSON.parse((await d.docker(["inspect", "vm-idle-rm"])).stdout)[0].State).toMatchObject({ Status: "exited", ExitCode: 0 });
    expect((await d.docker(["logs", "vm-idle-rm"])).stdout).toBe("bye\n");
    // The writable layer cannot be measured while the machine is down: 0, not a boot.
    expect((await d.docker(["ps", "-as", "--filter", "name=vm-idle-rm", "--format", "{{.Size}}"])).stdout).toMatch(/^0B /);
    expect((await d.docker(["rm", "vm-idle-rm"], LONG)).code).toBe(0);
    expect((await d.docker(["ps", "-aq", "--filter", "name=vm-idle-rm"])).stdout.trim()).toBe("");
    expect((await d.arcbox(["machine", "ls"])).stdout).toMatch(stopped);
    // What it left on the machine's disk goes at the next boot, before the run's own work.
    const again = await d.docker(["run", "--rm", IMAGE, "echo", "up"], { timeoutMs: 400_000 });
    expect(again).toMatchObject({ code: 0, stdout: "up\n" });
    expect(await inEngine("ls /var/lib/arcbox/data/vmm/host/rootfs /var/lib/arcbox/data/vmm/host/containers")).not.toContain(id);
    expect(readdirSync(join(d.home, "data", "vmm", "engine-leftovers"))).toEqual([]);
  }, 600_000);
});
