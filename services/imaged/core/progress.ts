/** Docker-style progress events, emitted by pull, push and load. */
export interface ProgressEvent {
  id?: string;
  status?: string;
  current?: number;
  total?: number;
  error?: string;
  aux?: unknown;
  /** Free text (docker load's "Loaded image: ..."). */
  stream?: string;
}

/** The Docker JSON-message form of an event. */
export function dockerMessage(e: ProgressEvent): Record<string, unknown> {
  if (e.error) return { errorDetail: { message: e.error }, error: e.error };
  if (e.stream !== undefined) return { stream: e.stream };
  const out: Record<string, unknown> = {};
  if (e.status) out.status = e.status;
  out.progressDetail = e.total || e.current ? { current: e.current ?? 0, total: e.total ?? 0 } : {};
  if (e.id) out.id = e.id;
  if (e.aux !== undefined) out.aux = e.aux;
  return out;
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
