/**
 * The common end-to-end fixture: a test registry holding the busybox image, and a real
 * ArcBox daemon that has already pulled it.
 */
import { TestDaemon } from "./daemon.ts";
import { startRegistry, type TestRegistry } from "./registry.ts";
import { pushBusybox } from "./test-images.ts";

export interface BusyboxDaemon {
  reg: TestRegistry;
  d: TestDaemon;
  /** The pulled image's reference, e.g. "127.0.0.1:PORT/busybox:latest". */
  image: string;
  /** Removes every container, stops the daemon and the registry (TestDaemon.dispose). */
  dispose(): Promise<void>;
}

export async function startBusyboxDaemon(homePrefix: string, env: Record<string, string> = {}): Promise<BusyboxDaemon> {
  const reg = await startRegistry();
  const image = (await pushBusybox(reg)).reference;
  const d = new TestDaemon(homePrefix, env);
  await d.start();
  const pull = await d.docker(["pull", "-q", image]);
  if (pull.code !== 0) throw new Error(`pull failed: ${pull.stderr}`);
  return {
    reg,
    d,
    image,
    async dispose() {
      await d.dispose();
      await reg.stop();
    },
  };
}
