/**
 * The build cache: a step's key (its parent image, its instruction after
 * substitution with the build args that reach it, and the checksums of the files it
 * copies) maps to the image the step produced. Kept in apid's SQLite so it survives
 * restarts; an entry whose image is gone is a miss (and is dropped).
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";

export interface CacheEntry {
  key: string;
  imageId: string;
  parentId: string;
  created: number;
}

export function cacheKey(parts: unknown[]): string {
  return new Bun.CryptoHasher("sha256").update(JSON.stringify(parts)).digest("hex");
}

export class BuildCache {
  private readonly db: Database;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "build-cache.db"), { create: true, strict: true });
    this.db.run("PRAGMA journal_mode = WAL");
    this.db.run("CREATE TABLE IF NOT EXISTS steps (key TEXT PRIMARY KEY, image_id TEXT NOT NULL, parent_id TEXT NOT NULL, created INTEGER NOT NULL)");
  }

  get(key: string): string | undefined {
    return this.db.query<{ image_id: string }, [string]>("SELECT image_id FROM steps WHERE key = ?").get(key)?.image_id;
  }

  put(key: string, imageId: string, parentId: string): void {
    this.db.query("INSERT OR REPLACE INTO steps (key, image_id, parent_id, created) VALUES (?, ?, ?, ?)").run(key, imageId, parentId, Date.now());
  }

  delete(key: string): void {
    this.db.query("DELETE FROM steps WHERE key = ?").run(key);
  }

  all(): CacheEntry[] {
    return this.db
      .query<{ key: string; image_id: string; parent_id: string; created: number }, []>("SELECT key, image_id, parent_id, created FROM steps ORDER BY created DESC")
      .all()
      .map((r) => ({ key: r.key, imageId: r.image_id, parentId: r.parent_id, created: r.created }));
  }

  close(): void {
    this.db.close();
  }
}
