/**
 * The CLI side of machine mounts: `--mount HOSTDIR:GUESTDIR[:ro][,cache=MODE]` specs
 * with a relative HOSTDIR resolved against the CLI's working directory, the default
 * share of the user's home directory, and `arcbox machine mount add|rm|ls`.
 */
import type { Client } from "@connectrpc/connect";
import { existsSync, statSync } from "node:fs";
import { isAbsolute, normalize, resolve } from "node:path";
import { checkGuestDir, formatMount, parseMountSpec } from "../../services/vmm/core/machine-mounts.ts";
import type { MachineManagerService, MachineMount } from "../../proto/gen/arcbox/machines/v1/manager_pb.ts";

type Api = Client<typeof MachineManagerService>;
export type MountInput = Pick<MachineMount, "hostDir" | "guestDir" | "readOnly" | "cacheMode">;

/** Parses one --mount spec (throws on a malformed one); a relative HOSTDIR is taken from the cwd. */
export function mountFromSpec(spec: string, cwd = process.cwd()): MountInput {
  const r = parseMountSpec(spec);
  return { hostDir: resolve(cwd, r.hostDir), guestDir: r.guestDir, readOnly: r.readOnly ?? false, cacheMode: r.cacheMode ?? "" };
}

/**
 * The share of the user's home directory at the same path in the machine (as OrbStack
 * does), or why there is none. `taken`: guest dirs the user mounts explicitly (they win).
 */
export function homeMount(home: string | undefined, taken: readonly string[]): { mount?: MountInput; note?: string } {
  if (!home) return { note: "not sharing a home directory: $HOME is not set" };
  if (!isAbsolute(home)) return { note: `not sharing the home directory: $HOME (${home}) is not absolute` };
  const dir = normalize(home).replace(/(.)\/+$/, "$1");
  if (dir === "/") return { note: "not sharing the home directory: $HOME is /" };
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { note: `not sharing the home directory: ${dir} does not exist` };
  try {
    checkGuestDir(dir);
  } catch (err) {
    return { note: `not sharing the home directory: ${(err as Error).message}` };
  }
  if (taken.some((t) => normalize(t).replace(/(.)\/+$/, "$1") === dir)) return {};
  return { mount: { hostDir: dir, guestDir: dir, readOnly: false, cacheMode: "" } };
}

const NEXT_START = "(takes effect on the machine's next start)";

/** `arcbox machine mount add|rm|ls ...`; `fail` raises a usage error. */
export async function mountCommand(api: Api, args: string[], fail: (msg: string) => never): Promise<number> {
  const [op, name, ...rest] = args;
  const running = async () => ((await api.inspect({ name: name! })).machine?.state ?? "") === "running";
  switch (op) {
    case "add": {
      if (!name || rest.length === 0) fail("machine mount add NAME HOSTDIR:GUESTDIR[:ro][,cache=MODE]...");
      const mounts = rest.map((spec) => {
        try {
          return mountFromSpec(spec);
        } catch (err) {
          return fail((err as Error).message);
        }
      });
      for (const mount of mounts) await api.addMount({ name, mount });
      for (const m of mounts) console.log(formatMount(m));
      if (await running()) process.stderr.write(`arcbox: ${name} is running: the new mount ${NEXT_START}\n`);
      return 0;
    }
    case "rm":
    case "remove": {
      if (!name || rest.length === 0) fail("machine mount rm NAME GUESTDIR...");
      for (const guestDir of rest) {
        await api.removeMount({ name, guestDir });
        console.log(guestDir);
      }
      if (await running()) process.stderr.write(`arcbox: ${name} is running: the removal ${NEXT_START}\n`);
      return 0;
    }
    case "ls":
    case "list": {
      if (!name) fail("machine mount ls NAME [--format json]");
      const json = rest[0] === "--format" && rest[1] === "json";
      if (rest.length && !json) fail(`unexpected arguments: ${rest.join(" ")} (only --format json)`);
      const { mounts } = await api.listMounts({ name });
      if (json) {
        console.log(JSON.stringify(mounts.map(mountJson)));
        return 0;
      }
      const rows = [["TAG", "HOST DIR", "GUEST DIR", "MODE", "CACHE"], ...mounts.map((m) => [m.tag, m.hostDir, m.guestDir, m.readOnly ? "ro" : "rw", m.cacheMode])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)) + 3);
      for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(""));
      return 0;
    }
    default:
      return fail(op ? `unknown machine mount command '${op}' (add, rm, ls)` : "machine mount needs a command: add, rm or ls");
  }
}

export function mountJson(m: MachineMount) {
  return { Tag: m.tag, Source: m.hostDir, Destination: m.guestDir, RW: !m.readOnly, Cache: m.cacheMode };
}
