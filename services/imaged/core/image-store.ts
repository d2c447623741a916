/**
 * The image catalogue: resolving references and IDs, recording pulled/loaded images,
 * tagging, and garbage collection of blobs and snapshots no image or container uses.
 * Content in flight (a pull not yet recorded) is leased and never collected.
 */
import { existsSync } from "node:fs";
import type { ContentStore } from "../storage/content-store.ts";
import type { ImageDb, ImageRow, LayerRow } from "../storage/image-db.ts";
import type { Snapshots } from "../storage/snapshots.ts";
import { ImageError, notFound } from "./errors.ts";
import { createdUnix, type ImageConfig } from "./manifest.ts";
import { familiar, formatReference, looksLikeId, parseReference, repository, withDefaultTag, type Reference } from "./reference.ts";

export interface NewImage {
  config: Uint8Array;
  configDigest: string;
  layers: LayerRow[];
}

export class ImageStore {
  /** Digests and diff IDs that in-flight operations hold; GC keeps them. */
  private leases = new Map<string, number>();

  constructor(
    readonly db: ImageDb,
    readonly content: ContentStore,
    readonly snapshots: Snapshots,
  ) {}

  lease(keys: string[]): () => void {
    for (const k of keys) this.leases.set(k, (this.leases.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of keys) {
        const n = (this.leases.get(k) ?? 1) - 1;
        if (n <= 0) this.leases.delete(k);
        else this.leases.set(k, n);
      }
    };
  }

  /** Resolves a reference, digest reference, full ID or unique short ID. */
  resolve(input: string): ImageRow {
    const img = this.tryResolve(input);
    if (!img) throw notFound(input);
    return img;
  }

  tryResolve(input: string): ImageRow | undefined {
    const s = input.trim();
    if (/^sha256:[a-f0-9]{64}$/.test(s)) return this.db.getImage(s);
    if (!s.startsWith("sha256:")) {
      let ref: Reference | undefined;
      try {
        ref = parseReference(s);
      } catch (err) {
        if (!looksLikeId(s)) throw err;
      }
      if (ref) {
        const r = withDefaultTag(ref);
        const id = r.digest ? this.db.digestTarget(`${repository(r)}@${r.digest}`) : this.db.tagTarget(formatReference(r));
        // name@digest is the manifest digest (as Docker resolves it), never the config ID.
        if (id) return this.db.getImage(id);
      }
    }
    if (looksLikeId(s)) {
      const hex = s.replace(/^sha256:/, "");
      if (hex.length === 64) return this.db.getImage(`sha256:${hex}`);
      const matches = this.db.findImagesByPrefix(hex);
      if (matches.length > 1) throw new ImageError("invalid_argument", `ambiguous image ID prefix ${s}`);
      return matches[0];
    }
    return undefined;
  }

  /** Records an image whose config and layers are all complete in the store. */
  record(img: NewImage): ImageRow {
    const cfg = JSON.parse(new TextDecoder().decode(img.config)) as ImageConfig;
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    const row: ImageRow = {
      id: img.configDigest,
      config: new TextDecoder().decode(img.config),
      created: createdUnix(cfg),
      size: img.layers.reduce((n, l) => n + l.size, 0),
      diffIds,
      added: Date.now(),
    };
    this.db.db.transaction(() => {
      for (const l of img.layers) this.db.putLayer(l);
      this.db.putImage(row);
    })();
    return this.db.getImage(row.id)!;
  }

  /** Image config as parsed JSON. */
  config(img: ImageRow): ImageConfig {
    return JSON.parse(img.config) as ImageConfig;
  }

  /** True when every layer of the image is unpacked (usable for a container). */
  complete(img: ImageRow): boolean {
    return img.diffIds.every((d) => this.snapshots.hasLayer(d));
  }

  repoTags(id: string): string[] {
    return this.db.tagsOf(id).map((t) => familiar(t.name));
  }

  repoDigests(id: string): string[] {
    return this.db.digestsOf(id).map((d) => familiar(d));
  }

  /** Points `target` (repo[:tag]) at the image `source` resolves to. */
  tag(source: string, target: string): void {
    const img = this.resolve(source);
    const ref = withDefaultTag(parseReference(target));
    if (ref.digest) throw new ImageError("invalid_argument", "refusing to create a tag with a digest reference");
    this.db.setTag(formatReference(ref), img.id);
  }

  /** Removes whatever no image, container or in-flight operation uses. Returns deleted layer diff IDs and bytes freed. */
  collectGarbage(): { layers: string[]; reclaimed: number } {
    const liveLayers = new Set<string>();
    const liveBlobs = new Set<string>();
    for (const img of this.db.allImages()) {
      liveBlobs.add(img.id);
      for (const d of img.diffIds) liveLayers.add(d);
    }
    for (const m of this.db.allManifestDigests()) liveBlobs.add(m);
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const layer of this.db.allLayers()) {
      if (liveLayers.has(layer.diffId) || this.leases.has(layer.diffId)) {
        liveBlobs.add(layer.blobDigest);
        continue;
      }
      reclaimed += layer.size;
      this.snapshots.removeLayer(layer.diffId);
      this.db.deleteLayer(layer.diffId);
      deleted.push(layer.diffId);
    }
    // Snapshot dirs without a row (e.g. a crash between rename and insert).
    for (const diffId of this.snapshots.listLayers()) {
      if (!liveLayers.has(diffId) && !this.leases.has(diffId) && !this.db.getLayer(diffId)) this.snapshots.removeLayer(diffId);
    }
    for (const digest of this.content.list()) {
      if (liveBlobs.has(digest) || this.leases.has(digest)) continue;
      try {
        reclaimed += this.content.size(digest);
      } catch {}
      this.content.delete(digest);
    }
    return { layers: deleted, reclaimed };
  }

  /** Bytes held by snapshots and blobs, each counted once. */
  storeSize(): number {
    let n = 0;
    for (const l of this.db.allLayers()) n += l.size + (existsSync(this.content.path(l.blobDigest)) ? l.blobSize : 0);
    return n;
  }
}
