/**
 * Container records in SQLite (`containers.db` in apid's data dir), mirrored in memory:
 * reads never touch the disk, every change is written through before it is visible.
 * A write that fails (a full disk) leaves the in-memory record as last persisted and
 * raises a clear error, so memory never claims what the disk does not hold.
 *
 * Schema version 2:
 *   containers(id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, record TEXT NOT NULL)  -- record: JSON ContainerRecord
 *   pending_creates(id TEXT PRIMARY KEY)  -- write-ahead: a create that may hold a rootfs but has no record yet
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { ContainerRecord } from "../container-record.ts";
import { ArcboxError } from "../../../../lib/errors.ts";
import { ContainerError } from "../container-error.ts";

const SCHEMA_VERSION = 2;

/** SQLite's "database or disk is full" and a raw ENOSPC as a typed error in Docker's words. */
export function storageError(err: unknown): Error {
  if (err instanceof ArcboxError) return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === "SQLITE_FULL") return new ContainerError("internal", `no space left on device: ${e.message}`, { cause: err });
  if (e?.code === "ENOSPC") return new ContainerError("internal", e.message ?? "no space left on device", { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

export class ContainerStore {
  private readonly db: Database;
  private readonly byId = new Map<string, ContainerRecord>();
  private readonly byName = new Map<string, ContainerRecord>();
  /** The JSON last written for each record: what a failed save puts back. */
  private readonly persisted = new Map<string, string>();
  private readonly upsert;
  private readonly remove;
  private readonly addPending;
  private readonly dropPending;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "containers.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version < SCHEMA_VERSION) {
      this.db.exec("CREATE TABLE IF NOT EXISTS containers (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, record TEXT NOT NULL)");
      this.db.exec("CREATE TABLE IF NOT EXISTS pending_creates (id TEXT PRIMARY KEY)");
      this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    this.upsert = this.db.query("INSERT INTO containers (id, name, record) VALUES ($id, $name, $record) ON CONFLICT(id) DO UPDATE SET name = excluded.name, record = excluded.record");
    this.remove = this.db.query("DELETE FROM containers WHERE id = $id");
    this.addPending = this.db.query("INSERT OR IGNORE INTO pending_creates (id) VALUES ($id)");
    this.dropPending = this.db.query("DELETE FROM pending_creates WHERE id = $id");
    for (const row of this.db.query("SELECT record FROM containers").all() as { record: string }[]) {
      const rec = JSON.parse(row.record) as ContainerRecord;
      this.byId.set(rec.id, rec);
      this.byName.set(rec.name, rec);
      this.persisted.set(rec.id, row.record);
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

  /**
   * Persists a new or changed record (renames included). On failure the record object
   * is put back as last persisted (a new one is not added) and a clear error is thrown.
   */
  save(rec: ContainerRecord, previousName?: string): void {
    const json = JSON.stringify(rec);
    try {
      this.upsert.run({ id: rec.id, name: rec.name, record: json });
    } catch (err) {
      this.revert(rec);
      throw storageError(err);
    }
    this.persisted.set(rec.id, json);
    if (previousName && previousName !== rec.name) this.byName.delete(previousName);
    this.byId.set(rec.id, rec);
    this.byName.set(rec.name, rec);
  }

  /** Puts the in-memory record back to its last persisted content. */
  private revert(rec: ContainerRecord): void {
    const last = this.persisted.get(rec.id);
    if (!last) return;
    const target = rec as unknown as Record<string, unknown>;
    for (const k of Object.keys(target)) delete target[k];
    Object.assign(target, JSON.parse(last));
  }

  /** Saves a record created by a pending create and ends that create, in one transaction. */
  commitCreate(rec: ContainerRecord): void {
    const json = JSON.stringify(rec);
    try {
      this.db.transaction(() => {
        this.upsert.run({ id: rec.id, name: rec.name, record: json });
        this.dropPending.run({ id: rec.id });
      })();
    } catch (err) {
      throw storageError(err);
    }
    this.persisted.set(rec.id, json);
    this.byId.set(rec.id, rec);
    this.byName.set(rec.name, rec);
  }

  delete(id: string): void {
    const rec = this.byId.get(id);
    try {
      this.remove.run({ id });
    } catch (err) {
      throw storageError(err);
    }
    this.byId.delete(id);
    this.persisted.delete(id);
    if (rec && this.byName.get(rec.name) === rec) this.byName.delete(rec.name);
  }

  /** Write-ahead mark of a create, before it asks for a rootfs. */
  beginCreate(id: string): void {
    try {
      this.addPending.run({ id });
    } catch (err) {
      throw storageError(err);
    }
  }

  /** Ends a create that failed and released what it took. */
  abandonCreate(id: string): void {
    try {
      this.dropPending.run({ id });
    } catch (err) {
      throw storageError(err);
    }
  }

  /** Creates a previous process did not finish (crashed between rootfs and record). */
  pendingCreates(): string[] {
    return (this.db.query("SELECT id FROM pending_creates").all() as { id: string }[]).map((r) => r.id);
  }

  close(): void {
    this.db.close();
  }
}
