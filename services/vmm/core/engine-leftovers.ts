/**
 * VM mode: removals the engine machine missed because it was not running. `docker rm`
 * of an exited container does not boot the machine; what the container left on the
 * machine's disk (its runtime state: "delete"; its upper/work dirs: "discard") is
 * removed at the machine's next boot (engine-machine.ts). So is a removed named
 * volume's data ("volume", by volume name: `docker volume rm` never boots it either).
 * One empty file per pending removal, `<dir>/<id>.<kind>`, so the list survives vmm
 * restarts and costs nothing idle.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export type LeftoverKind = "delete" | "discard" | "volume";

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class EngineLeftovers {
  constructor(private readonly dir: string) {}

  add(id: string, kind: LeftoverKind): void {
    if (!ID.test(id)) return; // never a path: the agent refuses such an id anyway
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(this.dir, `${id}.${kind}`), "");
  }

  /** Pending removals, deletes first (a discard removes the dirs a runtime container may still use). */
  list(): { id: string; kind: LeftoverKind }[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: { id: string; kind: LeftoverKind }[] = [];
    for (const name of names) {
      const m = /^(.+)\.(delete|discard|volume)$/.exec(name);
      if (m && ID.test(m[1]!)) out.push({ id: m[1]!, kind: m[2] as LeftoverKind });
    }
    return out.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "delete" ? -1 : 1));
  }

  done(id: string, kind: LeftoverKind): void {
    rmSync(join(this.dir, `${id}.${kind}`), { force: true });
  }
}
