/**
 * fsd's persistent state (SQLite under fsd's dataDir).
 *
 * Schema v1:
 *   volumes(name PK, doc JSON)
 *   refs(volume, container_id, PK(volume, container_id))  -- which containers use a volume
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { VolumeRecord } from "../core/model.ts";

export class VolumeStore {
  private readonly db: Database;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "fsd.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === 0) {
      this.db.exec(`
        CREATE TABLE volumes (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE refs (volume TEXT NOT NULL, container_id TEXT NOT NULL, PRIMARY KEY (volume, container_id));
        CREATE INDEX refs_by_container ON refs (container_id);
        PRAGMA user_version = 1;
      `);
    }
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
  get(name: string): VolumeRecord | undefined {
    const r = this.db.query("SELECT doc FROM volumes WHERE name = ?").get(name) as { doc: string } | null;
    return r ? JSON.parse(r.doc) : undefined;
  }
  all(): VolumeRecord[] {
    return this.db
      .query("SELECT doc FROM volumes ORDER BY name")
      .all()
      .map((r) => JSON.parse((r as { doc: string }).doc));
  }
  put(v: VolumeRecord): void {
    this.db.query("INSERT OR REPLACE INTO volumes (name, doc) VALUES (?, ?)").run(v.name, JSON.stringify(v));
  }
  delete(name: string): void {
    this.db.query("DELETE FROM volumes WHERE name = ?").run(name);
    this.db.query("DELETE FROM refs WHERE volume = ?").run(name);
  }
  users(name: string): string[] {
    return this.db
      .query("SELECT container_id FROM refs WHERE volume = ? ORDER BY container_id")
      .all(name)
      .map((r) => (r as { container_id: string }).container_id);
  }
  /** volume -> container IDs, for listing many volumes at once. */
  allUsers(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const r of this.db.query("SELECT volume, container_id FROM refs").all() as { volume: string; container_id: string }[]) {
      m.set(r.volume, [...(m.get(r.volume) ?? []), r.container_id]);
    }
    return m;
  }
  /** Whether any container uses any volume. */
  hasRefs(): boolean {
    return this.db.query("SELECT 1 FROM refs LIMIT 1").get() !== null;
  }
  volumesOf(containerId: string): string[] {
    return this.db
      .query("SELECT volume FROM refs WHERE container_id = ?")
      .all(containerId)
      .map((r) => (r as { volume: string }).volume);
  }
  addRef(name: string, containerId: string): void {
    this.db.query("INSERT OR IGNORE INTO refs (volume, container_id) VALUES (?, ?)").run(name, containerId);
  }
  dropRefs(containerId: string): void {
    this.db.query("DELETE FROM refs WHERE container_id = ?").run(containerId);
  }
  close(): void {
    this.db.close();
  }
}
