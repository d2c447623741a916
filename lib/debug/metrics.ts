/** A tiny Prometheus text-format registry: counters and gauges, no background work. */
type Labels = Record<string, string>;

interface Series {
  help: string;
  type: "counter" | "gauge";
  values: Map<string, { labels: Labels; value: number }>;
  collect?: () => number;
  collectMany?: () => { labels: Labels; value: number }[];
}

const key = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());
const renderLabels = (labels: Labels) => {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`).join(",")}}`;
};

export class MetricsRegistry {
  private series = new Map<string, Series>();

  constructor(private readonly prefix: string) {}

  counter(name: string, help: string) {
    const s = this.define(name, help, "counter");
    return {
      inc: (labels: Labels = {}, by = 1) => {
        const k = key(labels);
        const cur = s.values.get(k);
        if (cur) cur.value += by;
        else s.values.set(k, { labels, value: by });
      },
    };
  }

  /** A gauge computed when scraped, so keeping it current costs nothing. */
  gauge(name: string, help: string, collect: () => number) {
    this.define(name, help, "gauge").collect = collect;
  }

  /** A labelled gauge family computed when scraped (e.g. one series per share). */
  gauges(name: string, help: string, collect: () => { labels: Labels; value: number }[]) {
    this.define(name, help, "gauge").collectMany = collect;
  }

  private define(name: string, help: string, type: Series["type"]): Series {
    const full = `${this.prefix}_${name}`;
    let s = this.series.get(full);
    if (!s) {
      s = { help, type, values: new Map() };
      this.series.set(full, s);
    }
    return s;
  }

  render(): string {
    const lines: string[] = [];
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    lines.push(
      "# HELP process_resident_memory_bytes Resident memory size in bytes.",
      "# TYPE process_resident_memory_bytes gauge",
      `process_resident_memory_bytes ${mem.rss}`,
      "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
      "# TYPE process_cpu_seconds_total counter",
      `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
      "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
      "# TYPE process_start_time_seconds gauge",
      `process_start_time_seconds ${Math.floor(Date.now() / 1000 - process.uptime())}`,
    );
    for (const [name, s] of this.series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
      if (s.collect) lines.push(`${name} ${s.collect()}`);
      for (const { labels, value } of s.collectMany?.() ?? []) lines.push(`${name}${renderLabels(labels)} ${value}`);
      for (const { labels, value } of s.values.values()) lines.push(`${name}${renderLabels(labels)} ${value}`);
    }
    return `${lines.join("\n")}\n`;
  }
}
