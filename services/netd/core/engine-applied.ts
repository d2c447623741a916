/**
 * VM mode: what netd has already made in the engine machine since its boot, so an
 * attach does not rebuild it. Each kernel step there is a process in the machine
 * (~0.1 s under TCG) plus a round trip, and an attach used to redo the network's bridge
 * and the machine's whole firewall every time: two of its four calls.
 *
 * Keyed by what was applied (the bridge's plan, the rules' text), so a changed network
 * or rule set is applied again. Forgotten when the engine machine boots (netd attaches
 * its NIC at every boot: Machines.attach), when netd restarts (it lives in memory) and
 * when a step fails, so the worst a stale entry could cost is one failed attach.
 */
export class EngineApplied {
  private readonly done = new Map<string, string>();

  /** Runs `apply` unless `key` was applied with the same `content` since the last boot. */
  async once(key: string, content: string, apply: () => Promise<void>): Promise<void> {
    if (this.done.get(key) === content) return;
    this.done.delete(key);
    await apply();
    this.done.set(key, content);
  }

  forget(key: string): void {
    this.done.delete(key);
  }

  /** The engine machine (re)booted, or its objects were torn down: nothing is there. */
  reset(): void {
    this.done.clear();
  }
}
