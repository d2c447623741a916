/** Restart delays for a crashing service: doubling from 100 ms to 10 s, reset after a stable run. */
export class Backoff {
  private failures = 0;
  constructor(
    private readonly baseMs = 100,
    private readonly maxMs = 10_000,
    private readonly stableAfterMs = 10_000,
  ) {}

  /** Delay before the next start, given how long the last run lasted. */
  next(lastRunMs: number): number {
    if (lastRunMs >= this.stableAfterMs) this.failures = 0;
    const delay = Math.min(this.maxMs, this.baseMs * 2 ** this.failures);
    this.failures++;
    return delay;
  }
}
