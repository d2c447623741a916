/**
 * vmm's machine records (SQLite under data/vmm/), written through on every change.
 *
 * Schema v1: machines(name PK, doc JSON)
 * v2: every doc has `mounts` (VirtioFS shares; older records get none).
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { machineRecordSchema, type MachineRecord } from "../core/machine-model.ts";

export class MachineStore {
  private readonly db: Database;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "machines.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === 0) {
      this.db.exec(`
        CREATE TABLE machines (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
        PRAGMA user_version = 1;
      `);
    }
    if (version < 2) this.migrateV2();
  }

  /** v1 -> v2: records made before shares existed get an empty mount list. */
  private migrateV2(): void {
    this.db.transaction(() => {
      for (const r of this.db.query("SELECT name, doc FROM machines").all() as { name: string; doc: string }[]) {
        const doc = JSON.parse(r.doc) as Record<string, unknown>;
        if (!Array.isArray(doc.mounts)) this.db.query("UPDATE machines SET doc = ? WHERE name = ?").run(JSON.stringify({ ...doc, mounts: [] }), r.name);
      }
      this.db.exec("PRAGMA user_version = 2");
    })();
  }

  get(name: string): MachineRecord | undefined {
    const r = this.db.query("SELECT doc FROM machines WHERE name = ?").get(name) as { doc: string } | null;
    return r ? machineRecordSchema.parse(JSON.parse(r.doc)) : undefined;
  }

  all(): MachineRecord[] {
    return (this.db.query("SELECT doc FROM machines ORDER BY name").all() as { doc: string }[]).map((r) => machineRecordSchema.parse(JSON.parse(r.doc)));
  }

  /** Inserts a new record; false if the name is taken (atomically, so two creates cannot both win). */
  insert(m: MachineRecord): boolean {
    return this.db.query("INSERT OR IGNORE INTO machines (name, doc) VALUES (?, ?)").run(m.name, JSON.stringify(m)).changes === 1;
  }

  put(m: MachineRecord): void {
    this.db.query("INSERT OR REPLACE INTO machines (name, doc) VALUES (?, ?)").run(m.name, JSON.stringify(m));
  }

  delete(name: string): void {
    this.db.query("DELETE FROM machines WHERE name = ?").run(name);
  }

  close(): void {
    this.db.close();
  }
}
