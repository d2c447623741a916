/**
 * `arcbox machine ...`: VM machines, through vmm's MachineManagerService. Thin: parse
 * the arguments, call, print. Exec and shell move the terminal's bytes over the
 * per-exec socket vmm hands out and return the command's exit code.
 */
import { ConnectError } from "@connectrpc/connect";
import { parseArgs } from "node:util";
import type { ArcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import type { MachineInfo } from "../../proto/gen/arcbox/machines/v1/manager_pb.ts";
import { homeMount, mountCommand, mountFromSpec, mountJson } from "./machine-mounts.ts";

const usage = `Usage: arcbox machine COMMAND

Commands:
  create NAME [--image REF] [--cpus N] [--memory MIB] [--disk GIB] [--no-start]
         [--mount HOSTDIR:GUESTDIR[:ro][,cache=MODE]]... [--no-home]
  start NAME...            start stopped machines
  stop NAME...             power machines off (killed after --time seconds, default 20)
  restart NAME...
  rm [-f] NAME...          remove machines and their disks (-f: even when running)
  ls [--format json]       list machines
  inspect NAME...          JSON: state, accel, pid, ip, image, sizes, times, stop reason, mounts
  exec [-i] [-t] NAME -- CMD [ARGS...]   run a command in a machine; exits with its code
  shell NAME               an interactive login shell in a machine
  logs [-f] NAME           the machine's console log
  mount add NAME HOSTDIR:GUESTDIR[:OPTS]...   share a host directory (from the next start)
  mount rm NAME GUESTDIR...                  stop sharing it (from the next start)
  mount ls NAME [--format json]              the machine's shared directories

Shared directories (VirtioFS, served by fsd): HOSTDIR must exist (a relative path is
taken from the current directory), GUESTDIR is absolute and made in the machine if
missing. OPTS: ro (the machine's writes fail with "Read-only file system") and
cache=auto|always|never (auto, the default: host-side edits show within ~1 s; always:
fastest, for directories only the machine changes; never: no caching), comma-separated,
e.g. --mount ./src:/src:ro,cache=never. By default your home directory ($HOME) is
shared at the same path; --no-home leaves it out.
`;

class UsageError extends Error {}

function fail(msg: string): never {
  throw new UsageError(msg);
}

/** A whole number for `flag`, or a usage error naming the flag and the bad value. */
function wholeNumber(flag: string, v: string | undefined): number {
  if (v === undefined) return 0;
  if (!/^\d+$/.test(v) || Number(v) <= 0) fail(`invalid ${flag} '${v}': expected a positive whole number`);
  return Number(v);
}

type Options = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: Options): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    fail((err as Error).message);
  }
}

const iso = (ms: bigint) => (ms > 0n ? new Date(Number(ms)).toISOString() : "");

export function inspectJson(m: MachineInfo) {
  return {
    Name: m.name,
    State: m.state,
    StopReason: m.stopReason,
    Image: m.image,
    ImageID: m.imageId,
    Backend: m.backend,
    Accel: m.accel,
    AccelNote: m.accelNote,
    Pid: m.pid,
    IP: m.ip,
    MAC: m.mac,
    Cpus: m.cpus,
    MemoryMiB: m.memoryMib,
    DiskGiB: m.diskGib,
    Created: iso(m.createdUnixMs),
    Started: iso(m.startedUnixMs),
    Stopped: iso(m.stoppedUnixMs),
    Dir: m.dir,
    Mounts: m.mounts.map(mountJson),
    Ports: m.forwardedPorts,
    PortErrors: m.portErrors,
  };
}

export async function machine(home: ArcboxHome, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  const api = new ServiceClients(home).machineManager;
  try {
    switch (sub) {
      case "create": {
        const { values, positionals } = parse(args, {
          image: { type: "string" },
          cpus: { type: "string" },
          memory: { type: "string" },
          disk: { type: "string" },
          "no-start": { type: "boolean" },
          mount: { type: "string", multiple: true },
          "no-home": { type: "boolean" },
        });
        if (positionals.length !== 1) fail("machine create takes exactly one NAME");
        const mounts = ((values.mount as string[] | undefined) ?? []).map((spec) => {
          try {
            return mountFromSpec(spec);
          } catch (err) {
            return fail((err as Error).message);
          }
        });
        if (!values["no-home"]) {
          const home = homeMount(
            process.env.HOME,
            mounts.map((m) => m.guestDir),
          );
          if (home.note) process.stderr.write(`arcbox: ${home.note}\n`);
          if (home.mount) mounts.push(home.mount);
        }
        const res = await api.create({
          name: positionals[0]!,
          image: values.image as string | undefined,
          cpus: wholeNumber("--cpus", values.cpus as string | undefined),
          memoryMib: wholeNumber("--memory", values.memory as string | undefined),
          diskGib: wholeNumber("--disk", values.disk as string | undefined),
          noStart: Boolean(values["no-start"]),
          mounts,
        });
        console.log(res.machine!.name);
        return 0;
      }
      case "start":
      case "stop":
      case "restart": {
        const { values, positionals } = parse(args, { time: { type: "string", short: "t" } });
        if (positionals.length === 0) fail(`machine ${sub} needs a NAME`);
        const timeoutSeconds = wholeNumber("--time", values.time as string | undefined);
        let code = 0;
        for (const name of positionals) {
          try {
            if (sub === "start") await api.start({ name });
            else if (sub === "stop") await api.stop({ name, timeoutSeconds });
            else await api.restart({ name, timeoutSeconds });
            console.log(name);
          } catch (err) {
            code = report(err);
          }
        }
        return code;
      }
      case "rm": {
        const { values, positionals } = parse(args, { force: { type: "boolean", short: "f" } });
        if (positionals.length === 0) fail("machine rm needs a NAME");
        let code = 0;
        for (const name of positionals) {
          try {
            await api.remove({ name, force: Boolean(values.force) });
            console.log(name);
          } catch (err) {
            code = report(err);
          }
        }
        return code;
      }
      case "ls":
      case "list": {
        const { values } = parse(args, { format: { type: "string" } });
        const { machines } = await api.list({});
        if (values.format === "json") {
          console.log(JSON.stringify(machines.map(inspectJson)));
          return 0;
        }
        if (values.format !== undefined) fail(`unknown --format '${values.format}' (only json)`);
        const rows = [["NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "DISK", "IP", "ACCEL"]];
        for (const m of machines) rows.push([m.name, m.state, m.image, String(m.cpus), `${m.memoryMib}MiB`, `${m.diskGib}GiB`, m.ip || "-", m.accel || "-"]);
        const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)) + 3);
        for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(""));
        return 0;
      }
      case "inspect": {
        const { positionals } = parse(args, {});
        if (positionals.length === 0) fail("machine inspect needs a NAME");
        const out = [];
        for (const name of positionals) out.push(inspectJson((await api.inspect({ name })).machine!));
        console.log(JSON.stringify(positionals.length === 1 ? out[0] : out, null, 2));
        return 0;
      }
      case "logs": {
        const { values, positionals } = parse(args, { follow: { type: "boolean", short: "f" } });
        if (positionals.length !== 1) fail("machine logs takes exactly one NAME");
        const ac = new AbortController();
        process.once("SIGINT", () => ac.abort());
        try {
          for await (const chunk of api.logs({ name: positionals[0]!, follow: Boolean(values.follow) }, { signal: ac.signal })) process.stdout.write(chunk.data);
        } catch (err) {
          if (!ac.signal.aborted) throw err;
        }
        return 0;
      }
      case "mount":
      case "mounts":
        return await mountCommand(api, args, fail);
      case "exec":
      case "shell": {
        const { runExec } = await import("./machine-exec.ts");
        return await runExec(api, sub, args);
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(usage);
        return sub === undefined ? 2 : 0;
      default:
        fail(`unknown machine command '${sub}'`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`arcbox machine: ${err.message}\nSee 'arcbox machine --help'.\n`);
      return 2;
    }
    return report(err);
  }
}

export function report(err: unknown): number {
  const msg = err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err);
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause?.code ?? (err as { code?: unknown } | null)?.code;
  if (cause === "ENOENT" || cause === "ECONNREFUSED" || cause === "FailedToOpenSocket" || cause === "ConnectionRefused") {
    process.stderr.write("arcbox: ArcBox is not running (start it with `arcbox start`)\n");
    return 1;
  }
  process.stderr.write(`arcbox: ${msg}\n`);
  return 1;
}

export { UsageError };
