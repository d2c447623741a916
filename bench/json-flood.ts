/**
 * apid's memory under a JSON flood: four concurrent 5 MB bodies of `[[[[…` to
 * POST /containers/create (issue 8, item 10). Prints apid's PSS (from
 * /proc/PID/smaps_rollup) before, at peak (sampled every 20 ms) and settled
 * (5 s after the last answer), and the statuses the bodies got. `--chunked` sends
 * the bodies without a Content-Length, so the size is only known while reading.
 *
 *   bun bench/json-flood.ts [--chunked]
 */
import { readFileSync } from "node:fs";
import { arcboxHome } from "../lib/home.ts";
import { ServiceClients } from "../lib/service/clients.ts";
import { TestDaemon } from "../tests/helpers/daemon.ts";

const BODIES = 4;
const SIZE = 5 << 20;
const CHUNKED = process.argv.includes("--chunked");

function pssKb(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

const daemon = new TestDaemon("arcbox-json-flood-");
try {
  await daemon.start();
  const { pid } = await new ServiceClients(arcboxHome(daemon.home)).health("apid").check({});
  await daemon.api("/_ping");
  await Bun.sleep(1000);
  const before = pssKb(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, pssKb(pid))), 20);
  const bytes = new TextEncoder().encode("[".repeat(SIZE));
  // A stream body goes out chunked (no Content-Length), 64 KiB at a time.
  const chunked = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 65536) c.enqueue(bytes.subarray(i, i + 65536));
        c.close();
      },
    });
  const t0 = performance.now();
  const statuses = await Promise.all(
    Array.from({ length: BODIES }, () =>
      daemon
        .api("/containers/create", { method: "POST", headers: { "Content-Type": "application/json" }, body: CHUNKED ? chunked() : bytes })
        .then(async (r) => `${r.status} ${(await r.text()).slice(0, 120)}`)
        .catch((e: Error) => `error ${e.message}`),
    ),
  );
  const ms = performance.now() - t0;
  await Bun.sleep(5000);
  clearInterval(sampler);
  const settled = pssKb(pid);
  const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
  console.log(`answers (${ms.toFixed(0)} ms):\n  ${statuses.join("\n  ")}`);
  console.log(`apid PSS: before ${mb(before)}, peak ${mb(peak)}, settled ${mb(settled)}`);
  console.log(`apid alive after: ${(await daemon.api("/_ping")).status === 200}`);
} finally {
  await daemon.dispose();
}
