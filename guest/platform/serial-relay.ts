/**
 * Runs the virtio-serial relay (native/serial/arcbox-serial-relay.c) that carries the
 * agent protocol between the host (vmm, through qemu's virtserialport) and this agent's
 * Unix socket, one host session per connection. It is the agent's child (it dies with
 * it) and is restarted if it exits; restarts back off so a missing port cannot spin.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../lib/entry.ts";
import type { Logger } from "../../lib/log.ts";

export const SERIAL_RELAY = join(REPO_ROOT, "native", "bin", "arcbox-serial-relay");

export class SerialRelay {
  private proc: ReturnType<typeof Bun.spawn> | undefined;
  private stopped = false;
  private backoffMs = 100;

  constructor(
    private readonly port: string,
    private readonly agentSocket: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (!existsSync(SERIAL_RELAY)) throw new Error(`${SERIAL_RELAY} is missing (scripts/build-guest.sh builds it)`);
    this.spawn();
  }

  stop(): void {
    this.stopped = true;
    this.proc?.kill();
  }

  private spawn(): void {
    const startedAt = Date.now();
    this.proc = Bun.spawn([SERIAL_RELAY, this.port, this.agentSocket], { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
    void this.proc.exited.then((code) => {
      if (this.stopped) return;
      // A relay that ran for a while gets a quick restart; one that keeps failing, less so.
      this.backoffMs = Date.now() - startedAt > 10_000 ? 100 : Math.min(this.backoffMs * 2, 10_000);
      this.log.error("serial relay exited; restarting", { code, port: this.port, inMs: this.backoffMs });
      setTimeout(() => this.spawn(), this.backoffMs);
    });
  }
}
