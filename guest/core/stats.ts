/**
 * One stats sample of a container in Docker's ContainerStatsResponse shape, read from
 * cgroup v1 or v2 files and the container's /proc/<pid>/net/dev. apid adds
 * precpu_stats from the previous sample when it streams.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { CGROUP_V2, readCgroupFile, readCgroupKeyValues, readCgroupNumber } from "../platform/cgroups.ts";

const NO_LIMIT = 0x7ffffffffffff000; // cgroup v1 "unlimited" memory (page-aligned max)

function systemCpuUsageNs(): number {
  // First line of /proc/stat: cumulative jiffies of all CPUs (USER_HZ = 100).
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 8).map(Number);
  return fields.reduce((a, b) => a + b, 0) * 10_000_000;
}

function networks(pid: number): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  if (!pid) return out;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/dev`, "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n").slice(2)) {
    const [name, rest] = line.split(":");
    if (!rest || name!.trim() === "lo") continue;
    const f = rest.trim().split(/\s+/).map(Number);
    out[name!.trim()] = {
      rx_bytes: f[0]!,
      rx_packets: f[1]!,
      rx_errors: f[2]!,
      rx_dropped: f[3]!,
      tx_bytes: f[8]!,
      tx_packets: f[9]!,
      tx_errors: f[10]!,
      tx_dropped: f[11]!,
    };
  }
  return out;
}

function blkio(cg: string) {
  const entries = (readCgroupFile("blkio", cg, "blkio.throttle.io_service_bytes_recursive") ?? "").split("\n").flatMap((line) => {
    const [dev, op, value] = line.split(" ");
    if (!dev || !op || value === undefined || !dev.includes(":")) return [];
    const [major, minor] = dev.split(":").map(Number);
    return [{ major, minor, op: op.toLowerCase(), value: Number(value) }];
  });
  return {
    io_service_bytes_recursive: entries,
    io_serviced_recursive: null,
    io_queue_recursive: null,
    io_service_time_recursive: null,
    io_wait_time_recursive: null,
    io_merged_recursive: null,
    io_time_recursive: null,
    sectors_recursive: null,
  };
}

const hostMemory = () => Number(readFileSync("/proc/meminfo", "utf8").match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) * 1024;

export function containerStats(id: string, name: string, cgroupPath: string, pid: number) {
  const common = { id, name: `/${name}`, read: new Date().toISOString(), preread: "0001-01-01T00:00:00Z", num_procs: 0, storage_stats: {}, networks: networks(pid) };
  const precpu_stats = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  return { ...common, ...(CGROUP_V2 ? statsV2(cgroupPath) : statsV1(cgroupPath)), precpu_stats };
}

/** cgroup v2 (unified): Docker's v2 shape (no percpu_usage, memory.stat keys as is). */
export function statsV2(cg: string, controller = "") {
  const cpu = readCgroupKeyValues(controller, cg, "cpu.stat");
  const max = (file: string) => (readCgroupFile(controller, cg, file) ?? "max").trim();
  const memMax = max("memory.max");
  const pidsMax = max("pids.max");
  const io = (readCgroupFile(controller, cg, "io.stat") ?? "").split("\n").flatMap((line) => {
    const [dev, ...kv] = line.trim().split(/\s+/);
    if (!dev?.includes(":")) return [];
    const [major, minor] = dev.split(":").map(Number);
    const f = Object.fromEntries(kv.map((x) => x.split("=")).map(([k, v]) => [k, Number(v)]));
    return [
      { major, minor, op: "read", value: f.rbytes ?? 0 },
      { major, minor, op: "write", value: f.wbytes ?? 0 },
    ];
  });
  return {
    pids_stats: { current: readCgroupNumber(controller, cg, "pids.current"), ...(pidsMax !== "max" ? { limit: Number(pidsMax) } : {}) },
    blkio_stats: {
      io_service_bytes_recursive: io,
      io_serviced_recursive: null,
      io_queue_recursive: null,
      io_service_time_recursive: null,
      io_wait_time_recursive: null,
      io_merged_recursive: null,
      io_time_recursive: null,
      sectors_recursive: null,
    },
    cpu_stats: {
      cpu_usage: { total_usage: (cpu.usage_usec ?? 0) * 1000, usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000, usage_in_usermode: (cpu.user_usec ?? 0) * 1000 },
      system_cpu_usage: systemCpuUsageNs(),
      online_cpus: availableParallelism(),
      throttling_data: { periods: cpu.nr_periods ?? 0, throttled_periods: cpu.nr_throttled ?? 0, throttled_time: (cpu.throttled_usec ?? 0) * 1000 },
    },
    memory_stats: {
      usage: readCgroupNumber(controller, cg, "memory.current"),
      stats: readCgroupKeyValues(controller, cg, "memory.stat"),
      limit: memMax !== "max" ? Number(memMax) : hostMemory(),
    },
  };
}

function statsV1(cg: string) {
  const memStat = readCgroupKeyValues("memory", cg, "memory.stat");
  const limit = readCgroupNumber("memory", cg, "memory.limit_in_bytes");
  const cpuStat = readCgroupKeyValues("cpu", cg, "cpu.stat");
  const acct = readCgroupKeyValues("cpuacct", cg, "cpuacct.stat");
  const percpu = (readCgroupFile("cpuacct", cg, "cpuacct.usage_percpu") ?? "").trim().split(/\s+/).filter(Boolean).map(Number);
  const pidsMax = (readCgroupFile("pids", cg, "pids.max") ?? "max").trim();
  const onlineCpus = percpu.filter((v) => v > 0).length || availableParallelism();
  return {
    pids_stats: { current: readCgroupNumber("pids", cg, "pids.current"), ...(pidsMax !== "max" ? { limit: Number(pidsMax) } : {}) },
    blkio_stats: blkio(cg),
    cpu_stats: {
      cpu_usage: {
        total_usage: readCgroupNumber("cpuacct", cg, "cpuacct.usage"),
        percpu_usage: percpu,
        usage_in_kernelmode: (acct.system ?? 0) * 10_000_000,
        usage_in_usermode: (acct.user ?? 0) * 10_000_000,
      },
      system_cpu_usage: systemCpuUsageNs(),
      online_cpus: onlineCpus,
      throttling_data: { periods: cpuStat.nr_periods ?? 0, throttled_periods: cpuStat.nr_throttled ?? 0, throttled_time: cpuStat.throttled_time ?? 0 },
    },
    memory_stats: {
      usage: readCgroupNumber("memory", cg, "memory.usage_in_bytes"),
      max_usage: readCgroupNumber("memory", cg, "memory.max_usage_in_bytes"),
      stats: memStat,
      failcnt: readCgroupNumber("memory", cg, "memory.failcnt"),
      limit: limit && limit < NO_LIMIT ? limit : hostMemory(),
    },
  };
}
