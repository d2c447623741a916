/**
 * Container records in SQLite (`containers.db` in apid's data dir), mirrored in memory:
 * reads never touch the disk, every change is written through before it is visible.
 *
 * Schema version 1:
 *   containers(id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, record TEXT NOT NULL)  -- record: JSON ContainerRecord
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { ContainerRecord } from "../container-record.ts";

const SCHEMA_VERSION = 1;

export class ContainerStore {
  private readonly db: Database;
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, ContainerRecord>();
  private readonly upsert;
  private readonly remove;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "containers.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === 0) {
      this.db.exec("CREATE TABLE IF NOT EXISTS containers (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, record TEXT NOT NULL)");
      this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    this.upsert = this.db.query("INSERT INTO containers (id, name, record) VALUES ($id, $name, $record) ON CONFLICT(id) DO UPDATE SET name = excluded.name, record = excluded.record");
    this.remove = this.db.query("DELETE FROM containers WHERE id = $id");
    for (const row of this.db.query("SELECT record FROM containers").all() as { record: string }[]) {
      const rec = JSON.parse(row.record) as ContainerRecord;
      this.byId.set(rec.id, rec);
      this.byName.set(rec.name, rec);
    }
  }

  all(): ContainerRecord[] {
    return [...this.byId.values()];
  }

  get(id: string): ContainerRecord | undefined {
    return this.byId.get(id);
  }

  byExactName(name: string): ContainerRecord | undefined {
    return this.byName.get(name.startsWith("/") ? name : `/${name}`);
  }

  /** Resolves a full ID, a name, or an unambiguous ID prefix (Docker's lookup order). */
  find(ref: string): ContainerRecord | { ambiguous: true } | undefined {
    const exact = this.byId.get(ref) ?? this.byExactName(ref);
    if (exact) return exact;
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    let found: ContainerRecord | undefined;
    for (const rec of this.byId.values()) {
      if (!rec.id.startsWith(ref)) continue;
      if (found) return { ambiguous: true };
      found = rec;
    }
    return found;
  }

  /** Persists a new or changed record (renames included). */
  save(rec: ContainerRecord, previousName?: string): void {
    this.upsert.run({ id: rec.id, name: rec.name, record: JSON.stringify(rec) });
    if (previousName && previousName !== rec.name) this.byName.delete(previousName);
    this.byId.set(rec.id, rec);
    this.byName.set(rec.name, rec);
  }

  delete(id: string): void {
    const rec = this.byId.get(id);
    this.remove.run({ id });
    this.byId.delete(id);
    if (rec && this.byName.get(rec.name) === rec) this.byName.delete(rec.name);
  }

  close(): void {
    this.db.close();
  }
}
