/**
 * Finding and reading qemu processes by their files: the pidfile qemu writes, checked
 * against /proc/<pid>/cmdline (a pid can be reused), and the tail of qemu's own log.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";

/** The pid in `pidfile` if that process is alive and is the qemu serving `qmpSocket`. */
export function livePid(pidfile: string, qmpSocket: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidfile, "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return isQemuFor(pid, qmpSocket) ? pid : undefined;
}

export function isQemuFor(pid: number, qmpSocket: string): boolean {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  // A zombie has an empty cmdline: it is gone for our purposes.
  return argv.length > 1 && /qemu-system-/.test(argv[0] ?? "") && argv.some((a) => a.includes(qmpSocket.replaceAll(",", ",,")));
}

export function processAlive(pid: number): boolean {
  try {
    // A zombie still "exists" for kill(0); its /proc stat says Z.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The last lines qemu wrote to its log since the last start marker (`marker`). */
export function logTail(path: string, marker: string, maxBytes = 4096): string {
  if (!existsSync(path)) return "";
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    let text = buf.toString("utf8");
    const at = text.lastIndexOf(marker);
    if (at >= 0) text = text.slice(text.indexOf("\n", at) + 1);
    return text
      .trim()
      .split("\n")
      .filter((l) => l.trim())
      .slice(-3)
      .join(" | ");
  } finally {
    closeSync(fd);
  }
}
