/**
 * Layers, in one of two forms per diff ID:
 * - a squashfs image `<dataDir>/layer-images/<hex>` (built while the layer streams in,
 *   written as a temp file and renamed into place when complete), loop-mounted at
 *   `<dataDir>/mnt/<hex>` while a container uses it (layer-mounts.ts);
 * - an unpacked directory `<dataDir>/snapshots/<hex>`: stores from before layer
 *   images, kernels without squashfs or loop devices, and the rare layer sqfstar cannot
 *   express (a path listed twice).
 * Either way `layerPath` is the directory to use as an overlayfs lowerdir. And one
 * writable upper/work pair per container under `<dataDir>/containers/<id>/`, on the
 * same filesystem as required by overlayfs. Layers are unpacked into a temp directory
 * and renamed into place when complete; temp leftovers are removed at startup.
 * Deletion renames a tree into `trash/` (instant, atomic) and removes it off the event
 * loop, so rmi and container removal do not wait for the disk.
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmdirSync, rmSync, symlinkSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ImageError } from "../core/errors.ts";

export class Snapshots {
  readonly layerDir: string;
  /** Squashfs layer images, and where they are mounted. */
  readonly imageDir: string;
  readonly mountDir: string;
  readonly containerDir: string;
  /** Directory that short lower-layer links are relative to. */
  readonly linkBase: string;
  private readonly tmpDir: string;
  private readonly trashDir: string;
  private readonly linkDir: string;
  private seq = 0;
  /** Deletions still running, so shutdown can wait for them. */
  private pending = new Set<Promise<void>>();

  constructor(dataDir: string) {
    this.layerDir = join(dataDir, "snapshots");
    this.imageDir = join(dataDir, "layer-images");
    this.mountDir = join(dataDir, "mnt");
    this.containerDir = join(dataDir, "containers");
    this.tmpDir = join(dataDir, "snapshots-tmp");
    this.trashDir = join(dataDir, "trash");
    this.linkBase = dataDir;
    this.linkDir = join(dataDir, "l");
    for (const d of [this.layerDir, this.imageDir, this.mountDir, this.containerDir, this.tmpDir, this.trashDir, this.linkDir]) mkdirSync(d, { recursive: true, mode: 0o711 });
    // Half-unpacked layers of an interrupted run.
    for (const name of readdirSync(this.tmpDir)) renameSync(join(this.tmpDir, name), join(this.trashDir, `tmp-${name}`));
    // Layer images an interrupted run was still writing.
    for (const name of readdirSync(this.imageDir)) if (name.startsWith("tmp-")) rmSync(join(this.imageDir, name), { force: true });
    // Whatever a previous run had not finished deleting.
    for (const name of readdirSync(this.trashDir)) this.deleteInBackground(join(this.trashDir, name));
  }

  private deleteInBackground(path: string): void {
    const p: Promise<void> = rm(path, { recursive: true, force: true })
      .catch(() => {})
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Moves `path` out of sight at once and deletes it in the background. */
  private trash(path: string): void {
    const dest = join(this.trashDir, `${Date.now()}-${Math.random().toString(36).slice(2)}`);
    try {
      renameSync(path, dest);
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return;
      throw err;
    }
    this.deleteInBackground(dest);
  }

  /** Resolves when background deletions are done. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private hex(diffId: string): string {
    if (!/^sha256:[a-f0-9]{64}$/.test(diffId)) throw new ImageError("invalid_argument", `bad diff ID ${diffId}`);
    return diffId.slice(7);
  }

  /** The layer's lowerdir: the image's mount point, or the unpacked directory. */
  layerPath(diffId: string): string {
    return this.hasImage(diffId) ? this.mountPath(diffId) : this.dirPath(diffId);
  }

  dirPath(diffId: string): string {
    return join(this.layerDir, this.hex(diffId));
  }

  imagePath(diffId: string): string {
    return join(this.imageDir, this.hex(diffId));
  }

  mountPath(diffId: string): string {
    return join(this.mountDir, this.hex(diffId));
  }

  hasImage(diffId: string): boolean {
    return existsSync(this.imagePath(diffId));
  }

  /** A path for a layer image being written (removed at startup if left behind). */
  tempImage(): string {
    return join(this.imageDir, `tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}-${++this.seq}`);
  }

  /** Renames a complete image into place (first writer wins). */
  commitImage(tmp: string, diffId: string): void {
    if (this.hasLayer(diffId)) {
      rmSync(tmp, { force: true });
      return;
    }
    renameSync(tmp, this.imagePath(diffId));
  }

  discardImage(tmp: string): void {
    rmSync(tmp, { force: true });
  }

  /**
   * A short name for a layer: a symlink `l/<8 hex>` under `linkBase`, for overlayfs,
   * whose mount options are limited to one page (~35 full snapshot paths). Returns
   * the path relative to `linkBase`, or the absolute snapshot path if the name is taken.
   */
  shortLowerPath(diffId: string): string {
    const target = this.layerPath(diffId);
    const name = `l/${diffId.slice(7, 15)}`;
    try {
      symlinkSync(target, join(this.linkBase, name));
      return name;
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
      const old = readlinkSync(join(this.linkBase, name));
      if (old === target) return name;
      // The same layer in its other form (converted since): point the link at this one.
      if (old === this.dirPath(diffId) || old === this.mountPath(diffId)) {
        rmSync(join(this.linkBase, name), { force: true });
        return this.shortLowerPath(diffId);
      }
      // Another layer with the same 8-hex prefix: rare; fall back to the full path.
      return target;
    }
  }

  hasLayer(diffId: string): boolean {
    return this.hasImage(diffId) || existsSync(this.dirPath(diffId));
  }

  /** A fresh empty directory to unpack into. */
  tempLayer(): string {
    const dir = join(this.tmpDir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}-${++this.seq}`);
    mkdirSync(dir, { mode: 0o755 });
    return dir;
  }

  /** Moves a completely unpacked temp dir into place (first writer wins). */
  commitLayer(tmp: string, diffId: string): void {
    const dest = this.dirPath(diffId);
    if (this.hasLayer(diffId)) {
      this.trash(tmp);
      return;
    }
    renameSync(tmp, dest);
  }

  discard(tmp: string): void {
    this.trash(tmp);
  }

  /** Layers stored only as unpacked directories (to be converted to images). */
  unpackedLayers(): string[] {
    return readdirSync(this.layerDir)
      .filter((hex) => /^[a-f0-9]{64}$/.test(hex) && !existsSync(join(this.imageDir, hex)))
      .map((hex) => `sha256:${hex}`);
  }

  /** Layers stored in both forms: the directory is redundant once nothing uses it. */
  convertedDirs(): string[] {
    return readdirSync(this.layerDir)
      .filter((hex) => /^[a-f0-9]{64}$/.test(hex) && existsSync(join(this.imageDir, hex)))
      .map((hex) => `sha256:${hex}`);
  }

  /**
   * Puts the image converted from a layer's directory into place beside it. The
   * directory stays until `dropDir`: a container root made before may still use it.
   * Returns false (and discards `tmp`) if the layer went meanwhile or already has one.
   */
  commitConverted(tmp: string, diffId: string): boolean {
    if (this.hasImage(diffId) || !existsSync(this.dirPath(diffId))) {
      rmSync(tmp, { force: true });
      return false;
    }
    renameSync(tmp, this.imagePath(diffId));
    return true;
  }

  /** Deletes a converted layer's directory (its image stays). */
  dropDir(diffId: string): void {
    if (!this.hasImage(diffId)) throw new ImageError("internal", `layer ${diffId} has no image; its directory is its only copy`);
    this.trash(this.dirPath(diffId));
  }

  /** Deletes the layer in either form; the caller has unmounted its image (layer-mounts.ts). */
  removeLayer(diffId: string): void {
    const link = join(this.linkDir, diffId.slice(7, 15));
    try {
      const target = readlinkSync(link);
      if (target === this.dirPath(diffId) || target === this.mountPath(diffId)) rmSync(link, { force: true });
    } catch {}
    rmSync(this.imagePath(diffId), { force: true });
    try {
      rmdirSync(this.mountPath(diffId));
    } catch (err) {
      // Still mounted (nothing counts it, or collection ran first): detach it now.
      if ((err as { code?: string }).code === "EBUSY") {
        Bun.spawnSync(["umount", "-l", this.mountPath(diffId)], { stdout: "ignore", stderr: "ignore" });
        try {
          rmdirSync(this.mountPath(diffId));
        } catch {}
      }
    }
    this.trash(this.dirPath(diffId));
  }

  listLayers(): string[] {
    const all = new Set([...readdirSync(this.layerDir), ...readdirSync(this.imageDir).filter((n) => !n.startsWith("tmp-"))]);
    return [...all].map((hex) => `sha256:${hex}`);
  }

  containerPaths(containerId: string): { upper: string; work: string; root: string } {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(containerId)) throw new ImageError("invalid_argument", `invalid container id ${JSON.stringify(containerId)}`);
    const root = join(this.containerDir, containerId);
    return { root, upper: join(root, "upper"), work: join(root, "work") };
  }

  createContainer(containerId: string): { upper: string; work: string } {
    const p = this.containerPaths(containerId);
    mkdirSync(p.upper, { recursive: true, mode: 0o755 });
    mkdirSync(p.work, { recursive: true, mode: 0o700 });
    return p;
  }

  removeContainer(containerId: string): void {
    this.trash(this.containerPaths(containerId).root);
  }
}
