/**
 * Snapshot directories: one unpacked layer per diff ID under
 * `<dataDir>/snapshots/<hex>` (usable directly as an overlayfs lowerdir), and one
 * writable upper/work pair per container under `<dataDir>/containers/<id>/`, on the
 * same filesystem as required by overlayfs. Layers are unpacked into a temp directory
 * and renamed into place when complete; temp leftovers are removed at startup.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ImageError } from "../core/errors.ts";

export class Snapshots {
  readonly layerDir: string;
  readonly containerDir: string;
  private readonly tmpDir: string;
  private seq = 0;

  constructor(dataDir: string) {
    this.layerDir = join(dataDir, "snapshots");
    this.containerDir = join(dataDir, "containers");
    this.tmpDir = join(dataDir, "snapshots-tmp");
    rmSync(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.layerDir, this.containerDir, this.tmpDir]) mkdirSync(d, { recursive: true, mode: 0o711 });
  }

  layerPath(diffId: string): string {
    if (!/^sha256:[a-f0-9]{64}$/.test(diffId)) throw new ImageError("invalid_argument", `bad diff ID ${diffId}`);
    return join(this.layerDir, diffId.slice(7));
  }

  hasLayer(diffId: string): boolean {
    return existsSync(this.layerPath(diffId));
  }

  /** A fresh empty directory to unpack into. */
  tempLayer(): string {
    const dir = join(this.tmpDir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}-${++this.seq}`);
    mkdirSync(dir, { mode: 0o755 });
    return dir;
  }

  /** Moves a completely unpacked temp dir into place (first writer wins). */
  commitLayer(tmp: string, diffId: string): void {
    const dest = this.layerPath(diffId);
    if (existsSync(dest)) {
      rmSync(tmp, { recursive: true, force: true });
      return;
    }
    renameSync(tmp, dest);
  }

  discard(tmp: string): void {
    rmSync(tmp, { recursive: true, force: true });
  }

  removeLayer(diffId: string): void {
    rmSync(this.layerPath(diffId), { recursive: true, force: true });
  }

  listLayers(): string[] {
    return readdirSync(this.layerDir).map((hex) => `sha256:${hex}`);
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
    rmSync(this.containerPaths(containerId).root, { recursive: true, force: true });
  }
}
