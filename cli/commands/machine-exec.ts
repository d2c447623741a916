/**
 * `arcbox machine exec|shell`: CreateExec, then this process's stdio over the exec's
 * socket (raw bytes with a TTY, Docker's 8-byte multiplexed frames without), then
 * WaitExec for the exit code. With -t on a terminal, the terminal goes raw and window
 * size changes are forwarded.
 */
import type { Client } from "@connectrpc/connect";
import { connect } from "node:net";
import type { MachineManagerService } from "../../proto/gen/arcbox/machines/v1/manager_pb.ts";

type Api = Client<typeof MachineManagerService>;

/** What a shell reports for a process that SIGPIPE ended (128 + 13). */
const SIGPIPE_EXIT = 141;

const SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"];

interface ExecArgs {
  name: string;
  cmd: string[];
  interactive: boolean;
  tty: boolean;
  env: string[];
  cwd: string;
}

function parseExec(sub: string, args: string[]): ExecArgs {
  const a: ExecArgs = { name: "", cmd: [], interactive: false, tty: false, env: [], cwd: "" };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (a.name) break;
      a.name = arg;
      continue;
    }
    if (arg === "-e" || arg === "--env") a.env.push(args[++i] ?? "");
    else if (arg === "-w" || arg === "--workdir") a.cwd = args[++i] ?? "";
    else if (/^-[it]+$/.test(arg)) {
      if (arg.includes("i")) a.interactive = true;
      if (arg.includes("t")) a.tty = true;
    } else if (arg === "--interactive") a.interactive = true;
    else if (arg === "--tty") a.tty = true;
    else throw new Error(`unknown flag '${arg}'`);
  }
  a.cmd = args.slice(i);
  if (!a.name) throw new Error(`machine ${sub} needs a NAME`);
  if (sub === "shell") {
    if (a.cmd.length) throw new Error("machine shell takes only a NAME");
    a.cmd = SHELL;
    a.interactive = true;
    a.tty = Boolean(process.stdin.isTTY);
  } else if (a.cmd.length === 0) throw new Error("machine exec needs a command: exec NAME -- CMD [ARGS...]");
  return a;
}

/** Splits Docker's multiplexed stream (8-byte header: stream, 0, 0, 0, BE32 length). */
function demux(onFrame: (fd: number, data: Uint8Array) => void) {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 8) {
      const len = buf.readUInt32BE(4);
      if (buf.length < 8 + len) break;
      onFrame(buf[0]!, buf.subarray(8, 8 + len));
      buf = buf.subarray(8 + len);
    }
  };
}

/** Resolves once everything written to `out` so far has been handed to the OS. */
function flushed(out: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (out.destroyed || out.writableLength === 0) resolve();
    else out.write("", () => resolve());
  });
}

export async function runExec(api: Api, sub: string, args: string[]): Promise<number> {
  let a: ExecArgs;
  try {
    a = parseExec(sub, args);
  } catch (err) {
    process.stderr.write(`arcbox machine: ${(err as Error).message}\n`);
    return 2;
  }
  const localTty = a.tty && process.stdin.isTTY;
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const { execId, socket } = await api.createExec({ name: a.name, args: a.cmd, env: a.env, cwd: a.cwd, tty: a.tty, stdin: a.interactive, ...size() });

  const conn = connect(socket);
  await new Promise<void>((resolve, reject) => {
    conn.once("connect", resolve);
    conn.once("error", reject);
  });
  const onWinch = () => void api.resizeExec({ execId, ...size() }).catch(() => {});
  if (localTty) {
    process.stdin.setRawMode(true);
    process.on("SIGWINCH", onWinch);
  }
  const closed = new Promise<void>((resolve) => conn.on("close", () => resolve()));
  conn.on("error", () => {});
  // A reader that went away (`| head`): stop at once, as the docker CLI does when
  // SIGPIPE ends it, instead of waiting for a drain that never comes. The command
  // goes on in the machine, as a docker exec's does when its client leaves.
  let brokenPipe = false;
  const onOutputError = (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" || brokenPipe) return;
    brokenPipe = true;
    conn.destroy();
  };
  process.stdout.on("error", onOutputError);
  process.stderr.on("error", onOutputError);
  // A reader slower than the machine (`| wc -c`, a full pipe) holds the socket back
  // instead of piling the output up here.
  let held = false;
  const write = (out: NodeJS.WriteStream, data: Uint8Array) => {
    if (out.write(data) || held) return;
    held = true;
    conn.pause();
    out.once("drain", () => {
      held = false;
      conn.resume();
    });
  };
  if (a.tty) conn.on("data", (d: Buffer) => write(process.stdout, d));
  else
    conn.on(
      "data",
      demux((fd, data) => write(fd === 2 ? process.stderr : process.stdout, data)),
    );

  if (a.interactive) {
    process.stdin.on("data", (d: Buffer) => conn.write(d));
    process.stdin.once("end", () => conn.end());
  } else conn.end();

  try {
    await closed;
    if (brokenPipe) return SIGPIPE_EXIT;
    const { exitCode } = await api.waitExec({ execId });
    // The caller exits the process with the code: output still queued for a pipe would
    // be lost (32 MiB through `| wc -c` arrived as 18 MB).
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    return exitCode;
  } finally {
    if (localTty) {
      process.stdin.setRawMode(false);
      process.off("SIGWINCH", onWinch);
    }
    process.stdin.pause();
    process.stdin.destroy();
  }
}
