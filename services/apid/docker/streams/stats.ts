/**
 * `GET /containers/{id}/stats`: one sample, or one per second while the client reads
 * (a timer exists only while a stats stream is open). Each sample carries the previous
 * one as `precpu_stats`, as Docker's does, so clients can compute CPU percentages.
 */
import type { ContainerRuntimeQueries } from "../../core/container-backends.ts";
import type { ContainerRecord } from "../../core/container-record.ts";

const ZERO = "0001-01-01T00:00:00Z";
const blankCpu = {
  cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
  system_cpu_usage: 0,
  online_cpus: 0,
  throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
};

function blank(rec: ContainerRecord) {
  return {
    name: rec.name,
    id: rec.id,
    read: ZERO,
    preread: ZERO,
    pids_stats: {},
    blkio_stats: {
      io_service_bytes_recursive: null,
      io_serviced_recursive: null,
      io_queue_recursive: null,
      io_service_time_recursive: null,
      io_wait_time_recursive: null,
      io_merged_recursive: null,
      io_time_recursive: null,
      sectors_recursive: null,
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: blankCpu,
    precpu_stats: blankCpu,
    memory_stats: {},
  };
}

export function statsResponse(queries: Pick<ContainerRuntimeQueries, "statsSample">, rec: ContainerRecord, stream: boolean): Response {
  const running = () => rec.state.status === "running" || rec.state.status === "paused";
  let prev: Record<string, unknown> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const sample = async () => {
    if (!running()) return blank(rec);
    const cur = await queries.statsSample(rec);
    const out = { ...blank(rec), ...cur, name: rec.name, id: rec.id, read: cur.read ?? new Date().toISOString(), preread: prev?.read ?? ZERO, precpu_stats: prev?.cpu_stats ?? blankCpu };
    prev = cur;
    return out;
  };
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(ctrl) {
      if (!stream) {
        // Two samples a second apart give the CPU delta `docker stats --no-stream` shows.
        if (running()) {
          await sample().catch(() => undefined);
          await new Promise((r) => setTimeout(r, 1000));
        }
        ctrl.enqueue(enc.encode(`${JSON.stringify(await sample())}\n`));
        ctrl.close();
        return;
      }
      const tick = async () => {
        try {
          ctrl.enqueue(enc.encode(`${JSON.stringify(await sample())}\n`));
        } catch (err) {
          ctrl.error(err);
          return;
        }
        if (!running()) return ctrl.close();
        timer = setTimeout(tick, 1000);
      };
      await tick();
    },
    cancel() {
      if (timer) clearTimeout(timer);
    },
  });
  return new Response(body, { headers: { "Content-Type": "application/json" } });
}
