/** Side-by-side results, printed as a table with ArcBox/Docker ratios. */
export interface Row {
  metric: string;
  unit: string;
  arcbox: number;
  docker: number;
  /** true when smaller is better (latency, memory). */
  lowerIsBetter: boolean;
  /**
   * ArcBox in VM mode (issue 13: every container in the engine machine), when the bench
   * measures it: the value, or why there is none (e.g. "not available in VM mode yet").
   */
  vm?: number | string;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** "0.500 (2.00x better)": a/b, and what it means for the metric's direction. */
function ratio(a: number, b: number, lowerIsBetter: boolean): string {
  const r = a / b;
  const verdict = lowerIsBetter ? (r <= 1 ? `${(1 / r).toFixed(2)}x better` : `${r.toFixed(2)}x worse`) : r >= 1 ? `${r.toFixed(2)}x better` : `${(1 / r).toFixed(2)}x worse`;
  return `${r.toFixed(3)} (${verdict})`;
}

/**
 * The table. When a row has a VM-mode value, a second table compares ArcBox in VM
 * mode with Docker Engine and with ArcBox in host mode, all from the same run.
 */
export function printReport(title: string, rows: Row[]): void {
  const fmt = (v: number, unit: string) => `${v.toFixed(v < 10 ? 2 : 1)} ${unit}`;
  console.log(`\n${title}`);
  console.log(`${"metric".padEnd(34)}${"arcbox".padStart(14)}${"docker".padStart(14)}  ratio (arcbox/docker)`);
  for (const r of rows) console.log(`${r.metric.padEnd(34)}${fmt(r.arcbox, r.unit).padStart(14)}${fmt(r.docker, r.unit).padStart(14)}  ${ratio(r.arcbox, r.docker, r.lowerIsBetter)}`);
  if (!rows.some((r) => r.vm !== undefined)) return;
  console.log(`\n${title}: ArcBox in VM mode (engine machine; TCG here: KVM is unusable on this host, so VM numbers are the emulator's)`);
  console.log(`${"metric".padEnd(34)}${"arcbox vm".padStart(14)}${"docker".padStart(14)}  ${"ratio (vm/docker)".padEnd(28)}ratio (vm/arcbox host)`);
  for (const r of rows) {
    if (r.vm === undefined) continue;
    if (typeof r.vm === "string") {
      console.log(`${r.metric.padEnd(34)}${"-".padStart(14)}${fmt(r.docker, r.unit).padStart(14)}  ${r.vm}`);
      continue;
    }
    console.log(
      `${r.metric.padEnd(34)}${fmt(r.vm, r.unit).padStart(14)}${fmt(r.docker, r.unit).padStart(14)}  ${ratio(r.vm, r.docker, r.lowerIsBetter).padEnd(28)}${ratio(r.vm, r.arcbox, r.lowerIsBetter)}`,
    );
  }
}
