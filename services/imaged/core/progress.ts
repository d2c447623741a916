/** Docker-style progress events, emitted by pull, push and load. */
export interface ProgressEvent {
  id?: string;
  status?: string;
  current?: number;
  total?: number;
  error?: string;
  aux?: unknown;
}

export type Emit = (e: ProgressEvent) => void;

/** Short layer ID as the CLI shows it: 12 hex chars of the digest. */
export const shortId = (digest: string) => digest.replace(/^sha256:/, "").slice(0, 12);

/** Rate-limits byte progress to one event per interval (and always the last one). */
export function progressThrottle(emit: Emit, id: string, status: string, total: number, intervalMs = 100): (current: number) => void {
  let last = 0;
  return (current) => {
    const now = Date.now();
    if (now - last < intervalMs && current < total) return;
    last = now;
    emit({ id, status, current, total });
  };
}

/** Runs tasks with at most `limit` at once, in order. */
export async function withConcurrency<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}
