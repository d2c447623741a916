/**
 * Per-phase timings of a container operation ("create <id> mount=12 spec=3 shim=840
 * total=860", ms), appended to GUEST_PHASE_TRACE when that file exists, so a bench can
 * see where a `docker run` spends its time inside the machine. Off (one stat per
 * operation) unless someone created the file; never on the host (no /run/arcbox).
 */
import { appendFileSync, existsSync } from "node:fs";
import { GUEST_PHASE_TRACE } from "../vm/engine-layout.ts";

export class PhaseTimer {
  private readonly t0 = performance.now();
  private last = this.t0;
  private readonly parts: string[] = [];

  constructor(
    private readonly op: string,
    private readonly id: string,
    private readonly file = GUEST_PHASE_TRACE,
  ) {}

  /** Ends the phase running since the previous mark (or the start). */
  mark(phase: string): void {
    const now = performance.now();
    this.parts.push(`${phase}=${Math.round(now - this.last)}`);
    this.last = now;
  }

  end(): void {
    if (!existsSync(this.file)) return;
    try {
      appendFileSync(this.file, `${this.op} ${this.id.slice(0, 12)} ${this.parts.join(" ")} total=${Math.round(performance.now() - this.t0)}\n`);
    } catch {
      // A trace is never worth failing an operation for.
    }
  }
}
