/**
 * imaged's metadata in SQLite: images, tags, repo digests, layers (snapshots) and
 * which container holds a rootfs on which image. Blobs and snapshot files live on
 * disk (content-store.ts, snapshots.ts); a row is written only once its files are complete.
 *
 * Schema version 2 (v1 + manifests):
 *   images(id PK, config TEXT, created INT, size INT, diff_ids TEXT(JSON), added INT)
 *   tags(name PK = "domain/path:tag", image_id, updated INT)          -- repo tags
 *   digests(name PK = "domain/path@sha256:..", image_id, manifest_digest) -- repo digests
 *   layers(diff_id PK, size INT, blob_digest, media_type, blob_size INT)
 *   containers(container_id PK, image_id, created INT)                 -- prepared rootfs
 *   manifests(digest PK, image_id, media_type)  -- v2: platform manifests kept verbatim
 *                                                  (blobs in the content store) for push
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";

const SCHEMA_VERSION = 3;

export interface ImageRow {
  id: string;
  config: string;
  created: number;
  size: number;
  diffIds: string[];
  added: number;
}

export interface LayerRow {
  diffId: string;
  size: number;
  blobDigest: string;
  mediaType: string;
  blobSize: number;
}

interface RawImage {
  id: string;
  config: string;
  created: number;
  size: number;
  diff_ids: string;
  added: number;
}

const toImage = (r: RawImage): ImageRow => ({ id: r.id, config: r.config, created: r.created, size: r.size, diffIds: JSON.parse(r.diff_ids), added: r.added });

export class ImageDb {
  readonly db: Database;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "images.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version < SCHEMA_VERSION) this.migrate(version);
  }

  private migrate(from: number): void {
    this.db.transaction(() => {
      if (from < 1)
        this.db.exec(`
        CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, config TEXT NOT NULL, created INTEGER NOT NULL, size INTEGER NOT NULL, diff_ids TEXT NOT NULL, added INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id), updated INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
        CREATE TABLE IF NOT EXISTS digests (name TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id), manifest_digest TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS digests_image ON digests(image_id);
        CREATE TABLE IF NOT EXISTS layers (diff_id TEXT PRIMARY KEY, size INTEGER NOT NULL, blob_digest TEXT NOT NULL, media_type TEXT NOT NULL, blob_size INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS containers (container_id TEXT PRIMARY KEY, image_id TEXT NOT NULL, created INTEGER NOT NULL);
      `);
      if (from < 2) {
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS manifests (digest TEXT PRIMARY KEY, image_id TEXT NOT NULL, media_type TEXT NOT NULL);
          CREATE INDEX IF NOT EXISTS manifests_image ON manifests(image_id);
        `);
      }
      if (from < 3) {
        // The image a built or committed image was made from (Docker's Parent).
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS parents (image_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL);
          CREATE INDEX IF NOT EXISTS parents_parent ON parents(parent_id);
        `);
      }
      this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    })();
  }

  close(): void {
    this.db.close();
  }

  // --- images ---
  getImage(id: string): ImageRow | undefined {
    const r = this.db.query("SELECT * FROM images WHERE id = ?").get(id) as RawImage | null;
    return r ? toImage(r) : undefined;
  }
  findImagesByPrefix(hexPrefix: string): ImageRow[] {
    return (this.db.query("SELECT * FROM images WHERE id LIKE ?").all(`sha256:${hexPrefix}%`) as RawImage[]).map(toImage);
  }
  allImages(): ImageRow[] {
    return (this.db.query("SELECT * FROM images ORDER BY added").all() as RawImage[]).map(toImage);
  }
  putImage(img: ImageRow): void {
    this.db
      .query("INSERT INTO images (id, config, created, size, diff_ids, added) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING")
      .run(img.id, img.config, img.created, img.size, JSON.stringify(img.diffIds), img.added);
  }
  deleteImage(id: string): void {
    this.db.transaction(() => {
      this.db.query("DELETE FROM tags WHERE image_id = ?").run(id);
      this.db.query("DELETE FROM digests WHERE image_id = ?").run(id);
      this.db.query("DELETE FROM manifests WHERE image_id = ?").run(id);
      this.db.query("DELETE FROM images WHERE id = ?").run(id);
      this.db.query("DELETE FROM parents WHERE image_id = ?").run(id);
    })();
  }

  // --- parents (images made by commit or build) ---
  setParent(id: string, parentId: string): void {
    this.db.query("INSERT INTO parents (image_id, parent_id) VALUES (?, ?) ON CONFLICT(image_id) DO NOTHING").run(id, parentId);
  }
  parentOf(id: string): string | undefined {
    return (this.db.query("SELECT p.parent_id FROM parents p JOIN images i ON i.id = p.parent_id WHERE p.image_id = ?").get(id) as { parent_id: string } | null)?.parent_id;
  }
  /** Whether an existing image was made from this one (Docker hides such untagged images). */
  hasChildren(id: string): boolean {
    return !!this.db.query("SELECT 1 FROM parents p JOIN images i ON i.id = p.image_id WHERE p.parent_id = ? LIMIT 1").get(id);
  }

  // --- tags and digests ---
  tagTarget(name: string): string | undefined {
    return (this.db.query("SELECT image_id FROM tags WHERE name = ?").get(name) as { image_id: string } | null)?.image_id;
  }
  /** Points `name` at `imageId`; returns the image it pointed at before, if any. */
  setTag(name: string, imageId: string): string | undefined {
    const prev = this.tagTarget(name);
    this.db
      .query("INSERT INTO tags (name, image_id, updated) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, updated = excluded.updated")
      .run(name, imageId, Date.now() * 1e6);
    return prev;
  }
  deleteTag(name: string): void {
    this.db.query("DELETE FROM tags WHERE name = ?").run(name);
  }
  tagsOf(imageId: string): { name: string; updated: number }[] {
    return this.db.query("SELECT name, updated FROM tags WHERE image_id = ? ORDER BY name").all(imageId) as { name: string; updated: number }[];
  }
  digestTarget(name: string): string | undefined {
    return (this.db.query("SELECT image_id FROM digests WHERE name = ?").get(name) as { image_id: string } | null)?.image_id;
  }
  setDigest(name: string, imageId: string, manifestDigest: string): void {
    this.db.query("INSERT INTO digests (name, image_id, manifest_digest) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id").run(name, imageId, manifestDigest);
  }
  deleteDigest(name: string): void {
    this.db.query("DELETE FROM digests WHERE name = ?").run(name);
  }
  digestsOf(imageId: string): string[] {
    return (this.db.query("SELECT name FROM digests WHERE image_id = ? ORDER BY name").all(imageId) as { name: string }[]).map((r) => r.name);
  }

  // --- manifests ---
  putManifest(digest: string, imageId: string, mediaType: string): void {
    this.db.query("INSERT INTO manifests (digest, image_id, media_type) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING").run(digest, imageId, mediaType);
  }
  manifestsOf(imageId: string): { digest: string; mediaType: string }[] {
    return (this.db.query("SELECT digest, media_type FROM manifests WHERE image_id = ?").all(imageId) as { digest: string; media_type: string }[]).map((r) => ({
      digest: r.digest,
      mediaType: r.media_type,
    }));
  }
  allManifestDigests(): string[] {
    return (this.db.query("SELECT digest FROM manifests").all() as { digest: string }[]).map((r) => r.digest);
  }

  // --- layers ---
  getLayer(diffId: string): LayerRow | undefined {
    const r = this.db.query("SELECT * FROM layers WHERE diff_id = ?").get(diffId) as { diff_id: string; size: number; blob_digest: string; media_type: string; blob_size: number } | null;
    return r ? { diffId: r.diff_id, size: r.size, blobDigest: r.blob_digest, mediaType: r.media_type, blobSize: r.blob_size } : undefined;
  }
  putLayer(l: LayerRow): void {
    this.db
      .query("INSERT INTO layers (diff_id, size, blob_digest, media_type, blob_size) VALUES (?, ?, ?, ?, ?) ON CONFLICT(diff_id) DO NOTHING")
      .run(l.diffId, l.size, l.blobDigest, l.mediaType, l.blobSize);
  }
  deleteLayer(diffId: string): void {
    this.db.query("DELETE FROM layers WHERE diff_id = ?").run(diffId);
  }
  allLayers(): LayerRow[] {
    return (this.db.query("SELECT diff_id FROM layers").all() as { diff_id: string }[]).map((r) => this.getLayer(r.diff_id)!);
  }

  // --- containers ---
  containerImage(containerId: string): string | undefined {
    return (this.db.query("SELECT image_id FROM containers WHERE container_id = ?").get(containerId) as { image_id: string } | null)?.image_id;
  }
  putContainer(containerId: string, imageId: string): void {
    this.db.query("INSERT INTO containers (container_id, image_id, created) VALUES (?, ?, ?) ON CONFLICT(container_id) DO NOTHING").run(containerId, imageId, Date.now());
  }
  deleteContainer(containerId: string): void {
    this.db.query("DELETE FROM containers WHERE container_id = ?").run(containerId);
  }
  containerCount(imageId: string): number {
    return (this.db.query("SELECT COUNT(*) AS n FROM containers WHERE image_id = ?").get(imageId) as { n: number }).n;
  }
  containersUsing(imageId: string): string[] {
    return (this.db.query("SELECT container_id FROM containers WHERE image_id = ?").all(imageId) as { container_id: string }[]).map((r) => r.container_id);
  }
  /** Image ID of every container root, one entry per container. */
  allContainerRoots(): string[] {
    return (this.db.query("SELECT image_id FROM containers").all() as { image_id: string }[]).map((r) => r.image_id);
  }
  allContainerImages(): Set<string> {
    return new Set((this.db.query("SELECT DISTINCT image_id FROM containers").all() as { image_id: string }[]).map((r) => r.image_id));
  }
}
