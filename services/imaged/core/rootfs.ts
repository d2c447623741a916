/**
 * Container root filesystems: PrepareRootfs hands out the image's snapshot dirs as
 * overlayfs lower layers plus a fresh upper/work pair for the container, and records
 * that the container uses the image (which blocks its removal and collection);
 * ReleaseRootfs deletes the pair and the record. Layer images are mounted for the
 * first container that needs them and unmounted after the last (layer-mounts.ts).
 * In VM mode (`mountLayers` false) containers run in the engine machine, which mounts
 * the layer image files itself: the lower dirs are handed out as paths only (vmm maps
 * each to its image file) and the host mounts nothing for a container root.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ImageError, diskError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import type { ImageRow } from "../storage/image-db.ts";
import type { LayerConverter } from "./layer-convert.ts";
import type { LayerMounts } from "./layer-mounts.ts";

export interface PreparedRootfs {
  imageId: string;
  lowerDirs: string[];
  upperDir: string;
  workDir: string;
  configJson: string;
  layersBase: string;
  relativeLowerDirs: string[];
}

export class RootfsManager {
  constructor(
    private readonly store: ImageStore,
    private readonly mounts: LayerMounts,
    private readonly converter?: LayerConverter,
    private readonly opts: { mountLayers: boolean } = { mountLayers: true },
  ) {}

  /**
   * Runs `fn` while these layers are mounted (layer images are mounted only while
   * something uses them): for reads of an image's content outside a container, such as
   * the directory attributes a build step's layer inherits from its parent.
   */
  async withLayersMounted<T>(diffIds: string[], fn: () => Promise<T>): Promise<T> {
    const unhold = (await this.converter?.hold(diffIds)) ?? (() => {});
    try {
      await this.mounts.acquire(diffIds);
      try {
        return await fn();
      } finally {
        await this.mounts.release(diffIds);
      }
    } finally {
      unhold();
    }
  }

  async prepare(imageRef: string, containerId: string): Promise<PreparedRootfs> {
    if (!containerId) throw new ImageError("invalid_argument", "container_id is required");
    const img = this.store.resolve(imageRef);
    if (!this.store.complete(img)) throw new ImageError("failed_precondition", `image ${imageRef} is incomplete (a layer is missing); pull it again`);
    const owner = this.store.db.containerImage(containerId);
    if (owner && owner !== img.id) throw new ImageError("conflict", `container ${containerId} already has a root filesystem on image ${owner}`);
    // A layer being converted from an old store gets its image first; none of this
    // root's layer directories is deleted under it once the row below is written.
    const unhold = (await this.converter?.hold(img.diffIds)) ?? (() => {});
    try {
      return await this.prepareHeld(img, containerId, owner);
    } finally {
      unhold();
    }
  }

  private async prepareHeld(img: ImageRow, containerId: string, owner: string | undefined): Promise<PreparedRootfs> {
    let dirs: { upper: string; work: string };
    try {
      dirs = this.store.snapshots.createContainer(containerId);
      if (!owner) this.store.db.putContainer(containerId, img.id);
    } catch (err) {
      // Nothing half-made stays behind (a full disk fails mkdir or the database write).
      try {
        if (!owner) this.store.snapshots.removeContainer(containerId);
      } catch {}
      throw diskError(err);
    }
    const lowerDirs = img.diffIds.map((d) => this.store.snapshots.layerPath(d)).reverse();
    // Mounted after the row is written, so a restarted imaged counts them; a repeated
    // prepare of the same container counts its layers once.
    if (!owner && this.opts.mountLayers) {
      try {
        await this.mounts.acquire(img.diffIds);
      } catch (err) {
        this.store.snapshots.removeContainer(containerId);
        this.store.db.deleteContainer(containerId);
        throw err;
      }
    }
    const relativeLowerDirs = img.diffIds.map((d) => this.store.snapshots.shortLowerPath(d)).reverse();
    if (lowerDirs.length === 0) {
      // overlayfs needs at least one lower layer: an image without layers gets an empty one.
      const empty = join(this.store.snapshots.layerDir, "..", "empty-layer");
      mkdirSync(empty, { recursive: true, mode: 0o755 });
      lowerDirs.push(empty);
      relativeLowerDirs.push(empty);
    }
    return { imageId: img.id, lowerDirs, upperDir: dirs.upper, workDir: dirs.work, configJson: img.config, layersBase: this.store.snapshots.linkBase, relativeLowerDirs };
  }

  async release(containerId: string): Promise<void> {
    if (!containerId) throw new ImageError("invalid_argument", "container_id is required");
    const imageId = this.store.db.containerImage(containerId);
    this.store.snapshots.removeContainer(containerId);
    this.store.db.deleteContainer(containerId);
    const img = imageId ? this.store.db.getImage(imageId) : undefined;
    if (img) {
      if (this.opts.mountLayers) await this.mounts.release(img.diffIds);
      this.converter?.afterRelease(img.diffIds);
    }
  }
}
