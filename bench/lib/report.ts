/** Side-by-side results, printed as a table with ArcBox/Docker ratios. */
export interface Row {
  metric: string;
  unit: string;
  arcbox: number;
  docker: number;
  /** true when smaller is better (latency, memory). */
  lowerIsBetter: boolean;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export function printReport(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  console.log(`${"metric".padEnd(34)}${"arcbox".padStart(14)}${"docker".padStart(14)}  ratio (arcbox/docker)`);
  for (const r of rows) {
    const ratio = r.arcbox / r.docker;
    const verdict = r.lowerIsBetter
      ? ratio <= 1
        ? `${(1 / ratio).toFixed(2)}x better`
        : `${ratio.toFixed(2)}x worse`
      : ratio >= 1
        ? `${ratio.toFixed(2)}x better`
        : `${(1 / ratio).toFixed(2)}x worse`;
    const fmt = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ${r.unit}`;
    console.log(`${r.metric.padEnd(34)}${fmt(r.arcbox).padStart(14)}${fmt(r.docker).padStart(14)}  ${ratio.toFixed(3)} (${verdict})`);
  }
}
