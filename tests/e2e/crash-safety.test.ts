/**
 * Crash safety: apid killed with SIGKILL in the middle of `docker run -d` and of
 * `docker rm -f`, records a crash left half-written, a full disk, and a guest agent
 * left alone after `arcbox stop`. Each case must leave consistent records (every
 * container running, or created and startable, or gone) and, once the containers are
 * removed, nothing on the host (tests/helpers/leaks.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { findLeaks, NO_LEAKS } from "../helpers/leaks.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

let reg: TestRegistry;
let IMG: string;

beforeAll(async () => {
  reg = await startRegistry();
  IMG = (await pushBusybox(reg)).reference;
}, 60_000);
afterAll(async () => {
  await reg?.stop();
});

async function servicePid(d: TestDaemon, name: string): Promise<{ state: string; pid: number }> {
  const r = await d.arcbox(["status"]);
  const m = new RegExp(`^${name}\\s+(\\w+)\\s+(\\S+)`, "m").exec(r.stdout);
  return { state: m?.[1] ?? "", pid: Number(m?.[2]) };
}

async function agentPid(home: string): Promise<number | undefined> {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes("guest-agent") && cmd.includes(home)) return Number(pid);
    } catch {}
  }
  return undefined;
}

/** Files left in a per-container state directory of a service (each must be empty once all are removed). */
function leftovers(home: string): string[] {
  const dirs = [join(home, "data", "imaged", "containers"), join(home, "data", "vmm", "host", "containers"), join(home, "data", "apid", "containers")];
  return dirs.flatMap((d) => (existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : []));
}

async function expectNoLeaks(d: TestDaemon, ids: string[]): Promise<void> {
  // netd deletes namespaces and veths, imaged moves snapshots to its trash: give it a moment.
  const settled = await waitFor(
    "no leaks",
    async () => {
      const l = findLeaks(d.home, ids);
      return Object.values(l).every((v) => v.length === 0) && leftovers(d.home).length === 0 ? l : undefined;
    },
    15_000,
  ).catch(() => undefined);
  if (!settled) {
    expect(findLeaks(d.home, ids)).toEqual(NO_LEAKS);
    expect(leftovers(d.home)).toEqual([]);
  }
}

test("apid killed with SIGKILL during `docker run -d`: every container is running, startable or gone, and rm -f leaves nothing", async () => {
  const d = new TestDaemon("arcbox-crash-");
  try {
    await d.start();
    expect((await d.docker(["pull", "-q", IMG])).code).toBe(0);
    // How long one `run -d` takes once the services are up, to spread the kills over create and start.
    const warm = await d.docker(["run", "-d", "--name", "warm", IMG, "sleep", "1000"]);
    expect(warm.stderr).toBe("");
    let t0 = Date.now();
    const probe = await d.docker(["run", "-d", "--name", "probe", IMG, "sleep", "1000"]);
    expect(probe.stderr).toBe("");
    const span = Date.now() - t0;
    const ids = [warm.stdout.trim(), probe.stdout.trim()];
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const name = `k${i}`;
      const apid = await servicePid(d, "apid");
      expect(apid.pid).toBeGreaterThan(1);
      t0 = Date.now();
      const runP = d.docker(["run", "-d", "--name", name, IMG, "sleep", "1000"], { timeoutMs: 60_000 });
      // Delays from 10% to 100% of a run.
      await Bun.sleep(Math.round((span * (i + 1)) / 10));
      process.kill(apid.pid, "SIGKILL");
      await runP;
      await waitFor(
        "apid restarted",
        async () => {
          const s = await servicePid(d, "apid");
          return s.state === "ready" && s.pid !== apid.pid ? s : undefined;
        },
        30_000,
      );
      const ins = await d.docker(["inspect", name]);
      if (ins.code !== 0) {
        expect(ins.stderr).toContain("No such");
        outcomes.push("gone");
        continue;
      }
      const c = JSON.parse(ins.stdout)[0];
      ids.push(c.Id);
      outcomes.push(c.State.Status);
      expect(["running", "created"]).toContain(c.State.Status);
      if (c.State.Status === "created") {
        const st = await d.docker(["start", name]);
        expect(st.stderr).toBe("");
        expect(st.code).toBe(0);
      }
      expect(JSON.parse((await d.docker(["inspect", name])).stdout)[0].State.Status).toBe("running");
      expect((await d.docker(["exec", name, "true"])).code).toBe(0);
    }
    console.log(`outcomes over ${span} ms runs: ${outcomes.join(" ")}`);
    const rm = await d.docker(["rm", "-f", ...ids], { timeoutMs: 60_000 });
    expect(rm.stderr).toBe("");
    expect((await d.docker(["ps", "-aq"])).stdout).toBe("");
    await expectNoLeaks(d, ids);
  } finally {
    await d.dispose();
  }
}, 300_000);

test("apid killed with SIGKILL during `docker rm -f`: the removal is finished or can be redone, and nothing is left", async () => {
  const d = new TestDaemon("arcbox-crash-rm-");
  try {
    await d.start();
    expect((await d.docker(["pull", "-q", IMG])).code).toBe(0);
    const runOne = async (name: string) => {
      const r = await d.docker(["run", "-d", "--name", name, "-v", "/data", IMG, "sleep", "1000"]);
      expect(r.stderr).toBe("");
      return r.stdout.trim();
    };
    const ids = [await runOne("warm")];
    const t0 = Date.now();
    expect((await d.docker(["rm", "-f", "-v", "warm"])).code).toBe(0);
    const span = Date.now() - t0;
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const name = `r${i}`;
      ids.push(await runOne(name));
      const apid = await servicePid(d, "apid");
      expect(apid.pid).toBeGreaterThan(1);
      const rmP = d.docker(["rm", "-f", "-v", name], { timeoutMs: 60_000 });
      // From 30% to 100% of an rm: the later part is where the record is marked and released.
      await Bun.sleep(Math.round(span * (0.3 + (0.7 * (i + 1)) / 8)));
      process.kill(apid.pid, "SIGKILL");
      await rmP;
      await waitFor(
        "apid restarted",
        async () => {
          const st = await servicePid(d, "apid");
          return st.state === "ready" && st.pid !== apid.pid ? st : undefined;
        },
        30_000,
      );
      // Recovery finishes a removal that had begun; one that had not is left as it was.
      const status = await waitFor("removal settled", async () => {
        const r = await d.docker(["inspect", "--format", "{{.State.Status}}", name]);
        const st = r.code === 0 ? r.stdout.trim() : "gone";
        return st === "removing" ? undefined : st;
      });
      outcomes.push(status);
      expect(["gone", "running", "exited"]).toContain(status);
      if (status !== "gone") expect((await d.docker(["rm", "-f", "-v", name])).stderr).toBe("");
    }
    const finished = readFileSync(join(d.home, "log", "apid.log"), "utf8").split("finishing an interrupted removal").length - 1;
    console.log(`rm outcomes over ${span} ms: ${outcomes.join(" ")}; removals finished by recovery: ${finished}`);
    expect((await d.docker(["ps", "-aq"])).stdout).toBe("");
    expect((await d.docker(["volume", "ls", "-q"])).stdout).toBe("");
    await expectNoLeaks(d, ids);
  } finally {
    await d.dispose();
  }
}, 300_000);

test("records a crash left behind: start replaces an unknown runtime container, rm -f removes it, a begun removal is finished", async () => {
  const d = new TestDaemon("arcbox-crash-adopt-");
  try {
    await d.start();
    expect((await d.docker(["pull", "-q", IMG])).code).toBe(0);
    const ids: Record<string, string> = {};
    for (const name of ["restart-me", "remove-me", "half-removed"]) {
      const r = await d.docker(["run", "-d", "--name", name, "-v", "/data", IMG, "sleep", "1000"]);
      expect(r.stderr).toBe("");
      ids[name] = r.stdout.trim();
    }
    // Containers outlive the daemon; their records are rewritten as a record of an
    // older apid that died before saving its start would read: Created, no write-ahead mark.
    await d.stop();
    const db = new Database(join(d.home, "data", "apid", "containers.db"));
    for (const id of [ids["restart-me"], ids["remove-me"]]) {
      const row = db.query("SELECT record FROM containers WHERE id = ?").get(id!) as { record: string };
      const rec = JSON.parse(row.record);
      rec.state = { ...rec.state, status: "created", pid: 0, startedAt: "0001-01-01T00:00:00Z" };
      rec.network = null;
      delete rec.runtimeHeld;
      db.query("UPDATE containers SET record = ? WHERE id = ?").run(JSON.stringify(rec), id!);
    }
    // ...and one as apid leaves it when killed right after marking a removal (rm -f -v).
    const half = JSON.parse((db.query("SELECT record FROM containers WHERE id = ?").get(ids["half-removed"]!) as { record: string }).record);
    half.state = { ...half.state, status: "removing" };
    half.removal = { volumes: true };
    db.query("UPDATE containers SET record = ? WHERE id = ?").run(JSON.stringify(half), half.id);
    db.close();
    await d.start();
    await waitFor("the begun removal to be finished", async () => (await d.docker(["inspect", "half-removed"])).code !== 0);
    const st = await d.docker(["start", "restart-me"]);
    expect(st.stderr).toBe("");
    expect((await d.docker(["exec", "restart-me", "true"])).code).toBe(0);
    const rm = await d.docker(["rm", "-f", "-v", "restart-me", "remove-me"]);
    expect(rm.stderr).toBe("");
    expect((await d.docker(["volume", "ls", "-q"])).stdout).toBe("");
    await expectNoLeaks(d, Object.values(ids));
  } finally {
    await d.dispose();
  }
}, 120_000);

test("the guest agent exits after `arcbox stop` once its last container has exited", async () => {
  const d = new TestDaemon("arcbox-crash-agent-");
  try {
    await d.start();
    expect((await d.docker(["pull", "-q", IMG])).code).toBe(0);
    expect((await d.docker(["run", "-d", "--name", "lonely", "--network", "none", IMG, "sleep", "1000"])).code).toBe(0);
    // A stopped container whose runtime state stays with the agent until apid removes it.
    expect((await d.docker(["run", "--name", "done", "--network", "none", IMG, "sh", "-c", "exit 3"])).code).toBe(3);
    const pid = JSON.parse((await d.docker(["inspect", "lonely"])).stdout)[0].State.Pid as number;
    expect(pid).toBeGreaterThan(1);
    await d.stop();
    const agent = await agentPid(d.home);
    expect(agent).toBeGreaterThan(1);
    // Containers outlive the daemon: the agent stays while one runs...
    await Bun.sleep(500);
    expect(existsSync(`/proc/${agent}`)).toBe(true);
    // ...and goes once none does and nobody is connected.
    process.kill(pid, "SIGKILL");
    await waitFor("agent to exit", async () => !existsSync(`/proc/${agent}`), 15_000);
    // The next daemon picks the exit up from the agent's records.
    await d.start();
    const c = await waitFor("exit recorded", async () => {
      const i = JSON.parse((await d.docker(["inspect", "lonely"])).stdout)[0];
      return i.State.Status === "exited" ? i : undefined;
    });
    expect(c.State.ExitCode).toBe(137);
    expect(JSON.parse((await d.docker(["inspect", "done"])).stdout)[0].State.ExitCode).toBe(3);
  } finally {
    await d.dispose();
  }
}, 120_000);

/** A small ext4 filesystem on a loop device, so a home can run out of space. */
class SmallDisk {
  readonly root = mkdtempSync(join(tmpdir(), "arcbox-df-"));
  readonly image = join(this.root, "disk.img");
  readonly mnt = join(this.root, "mnt");

  async mount(sizeMb: number): Promise<void> {
    mkdirSync(this.mnt);
    for (const argv of [
      ["truncate", "-s", `${sizeMb}M`, this.image],
      ["mkfs.ext4", "-q", "-F", "-m", "0", this.image],
      ["mount", "-o", "loop", this.image, this.mnt],
    ]) {
      const r = await run(argv);
      if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    }
  }

  /** Takes every free block. */
  async fill(): Promise<void> {
    const avail = Number((await run(["df", "-B1", "--output=avail", this.mnt])).stdout.split("\n")[1]);
    await run(["fallocate", "-l", String(Math.max(avail - 4096, 4096)), join(this.mnt, "filler")]);
    await run(["dd", "if=/dev/zero", `of=${join(this.mnt, "filler2")}`, "bs=4k"]);
    await run(["sync"]);
  }

  free(): void {
    rmSync(join(this.mnt, "filler"), { force: true });
    rmSync(join(this.mnt, "filler2"), { force: true });
  }

  async dispose(): Promise<void> {
    await run(["umount", "-l", this.mnt]);
    rmSync(this.root, { recursive: true, force: true });
  }
}

test("a full disk fails the one operation that hit it, with a clear error, and the daemon keeps serving", async () => {
  const disk = new SmallDisk();
  await disk.mount(128);
  const home = join(disk.mnt, "home");
  mkdirSync(home);
  const d = new TestDaemon("", {}, home);
  const docker = (args: string[]) => d.docker(args, { timeoutMs: 60_000 });
  try {
    await d.start();
    expect((await docker(["pull", "-q", IMG])).code).toBe(0);
    expect((await docker(["run", "--name", "three", "--network", "none", IMG, "sh", "-c", "exit 3"])).code).toBe(3);
    const three = JSON.parse((await docker(["inspect", "three"])).stdout)[0].State;
    expect((await docker(["run", "-d", "--name", "keeper", IMG, "sleep", "1000"])).code).toBe(0);
    expect((await docker(["create", "--name", "idle", "--network", "none", IMG, "true"])).code).toBe(0);
    // Exits with 3 on SIGTERM: it will exit while the disk is full.
    expect((await docker(["run", "-d", "--name", "late", "--network", "none", IMG, "sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done"])).code).toBe(0);
    const latePid = JSON.parse((await docker(["inspect", "late"])).stdout)[0].State.Pid as number;
    expect(latePid).toBeGreaterThan(1);
    // An attached --rm run whose container exits (4) on the full disk: the CLI waits for "removed".
    const rmLate = d.docker(["run", "--rm", "--name", "rmlate", "--network", "none", IMG, "sh", "-c", "trap 'exit 4' TERM; while :; do sleep 0.1; done"], { timeoutMs: 120_000 });
    const rmLatePid = await waitFor("rmlate to run", async () => {
      const r = await docker(["inspect", "rmlate"]);
      return r.code === 0 ? (JSON.parse(r.stdout)[0].State.Pid as number) || undefined : undefined;
    });
    const agentBefore = await agentPid(home);

    await disk.fill();
    const timed = async (args: string[]) => {
      const t0 = Date.now();
      const r = await docker(args);
      return { ...r, ms: Date.now() - t0 };
    };
    const exec = await timed(["exec", "keeper", "echo", "hi"]);
    expect(exec.code).not.toBe(0);
    // As Docker does, a process that cannot start is reported in the stream (stdout).
    expect(exec.stdout + exec.stderr).toContain("no space left on device");
    expect(exec.ms).toBeLessThan(30_000);

    const create = await timed(["create", "--network", "none", IMG, "true"]);
    expect(create.code).not.toBe(0);
    expect(create.stderr).toContain("no space left on device");
    expect(create.ms).toBeLessThan(30_000);

    const runRm = await timed(["run", "--rm", "--network", "none", IMG, "echo", "hi"]);
    expect(runRm.code).not.toBe(0);
    expect(runRm.stderr).toContain("no space left on device");
    expect(runRm.ms).toBeLessThan(30_000);

    // The runtime pauses, the record cannot say so: the pause is undone, the error stands.
    const pause = await timed(["pause", "keeper"]);
    expect(pause.code).not.toBe(0);
    expect(pause.stderr).toContain("no space left on device");

    // rm may succeed (it frees space) or fail cleanly; either way the record stays usable.
    const rm = await timed(["rm", "idle"]);
    if (rm.code !== 0) expect(rm.stderr).toContain("no space left on device");
    expect(rm.ms).toBeLessThan(30_000);

    // An exit on a full disk: neither the shim's exit file nor the record can be written.
    process.kill(latePid, "SIGTERM");
    const late = await waitFor("late to exit", async () => {
      const st = JSON.parse((await docker(["inspect", "late"])).stdout)[0].State;
      return st.Status === "exited" ? st : undefined;
    });
    expect(late.ExitCode).toBe(3);

    // The --rm run ends in bounded time: removal failed, and the CLI is told so.
    process.kill(rmLatePid, "SIGTERM");
    const t0 = Date.now();
    const rmLateRun = await rmLate;
    const rmLateMs = Date.now() - t0;
    expect(rmLateMs).toBeLessThan(30_000);
    expect(rmLateRun.code).not.toBe(0);
    console.log(`disk full: attached run --rm ended with ${rmLateRun.code} in ${rmLateMs} ms: ${rmLateRun.stderr.trim()}`);

    for (const [what, r] of Object.entries({ exec, create, runRm, pause, rm })) console.log(`disk full: ${what} exit ${r.code} in ${r.ms} ms: ${(r.stdout + r.stderr).trim().split("\n")[0]}`);
    expect((await docker(["version", "--format", "{{.Server.Version}}"])).code).toBe(0);
    expect(JSON.parse((await docker(["inspect", "three"])).stdout)[0].State).toEqual(three);

    disk.free();
    // Nothing crashed: the same agent serves, no service was restarted.
    expect(await agentPid(home)).toBe(agentBefore);
    expect(readFileSync(join(home, "log", "supervisor.log"), "utf8")).not.toContain("exited unexpectedly");
    expect(JSON.parse((await docker(["inspect", "keeper"])).stdout)[0].State.Status).toBe("running");
    expect((await docker(["exec", "keeper", "echo", "hi"])).stdout).toBe("hi\n");
    expect((await docker(["run", "--rm", "--network", "none", IMG, "echo", "ok"])).stdout).toBe("ok\n");
    if (rm.code !== 0) {
      // A failed rm leaves a container that still starts, or one marked dead that the next rm removes.
      const status = JSON.parse((await docker(["inspect", "idle"])).stdout)[0].State.Status;
      if (status === "created") expect((await docker(["start", "idle"])).stderr).toBe("");
      else {
        expect(status).toBe("dead");
        expect((await docker(["rm", "idle"])).stderr).toBe("");
      }
    }
    expect(JSON.parse((await docker(["inspect", "three"])).stdout)[0].State).toEqual(three);
    // A restarted apid reads the exit that happened on the full disk back, not 255.
    const apid = await servicePid(d, "apid");
    expect(apid.pid).toBeGreaterThan(1);
    process.kill(apid.pid, "SIGKILL");
    await waitFor(
      "apid restarted",
      async () => {
        const st = await servicePid(d, "apid");
        return st.state === "ready" && st.pid !== apid.pid ? st : undefined;
      },
      30_000,
    );
    // apid answers as soon as its socket is up and reconciles with the runtime in the
    // background, so the record may say "running" for a moment after the restart.
    const lateAfter = await waitFor(
      "late's exit read back",
      async () => {
        const st = JSON.parse((await docker(["inspect", "late"])).stdout)[0].State;
        return st.Status === "exited" ? st : undefined;
      },
      30_000,
    );
    expect(lateAfter.ExitCode).toBe(3);
    // ...and finishes the --rm whose removal the full disk refused.
    await waitFor("rmlate removed", async () => (await docker(["inspect", "rmlate"])).code !== 0);
    expect(JSON.parse((await docker(["inspect", "three"])).stdout)[0].State).toEqual(three);
    const ids = (await docker(["ps", "-aq", "--no-trunc"])).stdout.split("\n").filter(Boolean);
    const rmAll = await docker(["rm", "-f", ...ids]);
    expect(rmAll.stderr).toBe("");
    await expectNoLeaks(d, ids);
  } finally {
    await d.dispose();
    await disk.dispose();
  }
}, 240_000);
