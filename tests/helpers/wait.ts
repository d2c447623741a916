/** Waiting for a condition in tests: bounded, polling a probe every 25 ms. */
import { TEST_ENGINE } from "./daemon.ts";

/**
 * In VM mode (ARCBOX_TEST_ENGINE=vm) every bound is ten times longer: a container
 * start under TCG takes seconds where the host takes a fraction of one, and the
 * bounds only catch a hang.
 */
const SCALE = TEST_ENGINE === "vm" ? 10 : 1;

/**
 * Resolves with the probe's first result that is neither `undefined` nor `false`
 * (so a boolean probe and a value-returning probe both work); throws after `timeoutMs`.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs * SCALE;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/**
 * Waits until a process sent SIGKILL has exited (gone, or a zombie): kill() returns
 * before the kernel has torn it down, and until then its listening sockets still take
 * connections, which its exit then resets.
 */
export async function waitForDeath(pid: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    `process ${pid} to exit`,
    async () => {
      const stat = await Bun.file(`/proc/${pid}/stat`)
        .text()
        .catch(() => "");
      return stat === "" || / Z /.test(stat.slice(stat.lastIndexOf(")")));
    },
    timeoutMs,
  );
}
