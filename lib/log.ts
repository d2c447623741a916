/**
 * Line-oriented logging to stderr; the supervisor points each service's stderr at
 * `$ARCBOX_HOME/log/<service>.log`, so one line here is one line in that file.
 *
 * Lines are written synchronously to fd 2 and a failed write is dropped: on a full
 * disk, a log line must not take the process down (an async write error on
 * process.stderr is an uncaught 'error' event, which kills a Bun process), and
 * logging resumes by itself once space is freed.
 */
import { fchmodSync, openSync, writeSync } from "node:fs";

// Whatever else writes to stderr/stdout (console.*) must not crash the process either.
// ARCBOX_LOG_STDIO_GUARD=0 skips it (the guest agent in a VM: nothing there writes
// through these streams, and creating them took ~0.4 s of its start under TCG).
if (process.env.ARCBOX_LOG_STDIO_GUARD !== "0") for (const stream of [process.stderr, process.stdout]) stream?.on?.("error", () => {});

function writeLine(line: string): void {
  try {
    writeSync(2, line);
  } catch {
    // ENOSPC, EAGAIN on a full pipe, EBADF: the line is lost, the process lives on.
  }
}
export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = order[(process.env.ARCBOX_LOG_LEVEL as LogLevel) ?? "info"] ?? order.info;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(component: string): Logger {
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${component}] ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        const text = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
        line += ` ${k}=${/\s/.test(text ?? "") ? JSON.stringify(text) : text}`;
      }
    }
    writeLine(`${line}\n`);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}

/**
 * Opens a log file for appending, for its owner only: logs carry container names,
 * commands, image references and error details no other local user should read.
 * The mode is set on the descriptor too, so a file created 0644 by an older version is
 * tightened on its next open.
 */
export function openLogFile(path: string): number {
  const fd = openSync(path, "a", 0o600);
  fchmodSync(fd, 0o600);
  return fd;
}
