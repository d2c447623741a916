/**
 * Converts a store from before layer images: each layer kept as an unpacked directory
 * becomes a squashfs image (built beside it, renamed into place when complete, so a
 * crash mid-way leaves only a temp file that the next start removes). It runs in the
 * background after imaged starts, one layer at a time, and never blocks a call.
 *
 * A directory is deleted only when no container root uses the layer: an overlay that
 * was mounted with it as a lower dir keeps reading it. Such a layer gets its image at
 * once (new roots use the image) and loses its directory when its last root is
 * released. `hold` keeps a conversion from deleting a directory that a root being
 * prepared is about to use, and makes the prepare wait for a conversion in flight.
 */
import { existsSync } from "node:fs";
import type { Logger } from "../../../lib/log.ts";
import { buildSquashfsFromDir, layerImageSupport } from "../platform/layer-image.ts";
import type { ImageStore } from "./image-store.ts";

export class LayerConverter {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly held = new Map<string, number>();
  private queue: Promise<void> = Promise.resolve();
  private running = 0;
  converted = 0;
  failed = 0;

  constructor(
    private readonly store: ImageStore,
    private readonly log: Logger,
  ) {}

  /** True while a conversion is queued or running (imaged must not idle out then). */
  get busy(): boolean {
    return this.running > 0;
  }

  /** Layers in use by a container root now. */
  private inUse(): Set<string> {
    const used = new Set<string>();
    for (const imageId of this.store.db.allContainerImages()) for (const d of this.store.db.getImage(imageId)?.diffIds ?? []) used.add(d);
    for (const d of this.held.keys()) used.add(d);
    return used;
  }

  /** Queues every unpacked layer, and drops the directories of converted ones nothing uses. */
  start(): void {
    if (!layerImageSupport().ok) return;
    this.dropUnusedDirs();
    for (const d of this.store.snapshots.unpackedLayers()) this.enqueue(d);
  }

  /** After a root is released: its layers' old directories may go now. */
  afterRelease(diffIds: string[]): void {
    const used = this.inUse();
    for (const d of diffIds) if (!used.has(d) && this.store.snapshots.hasImage(d) && existsSync(this.store.snapshots.dirPath(d))) this.store.snapshots.dropDir(d);
  }

  /**
   * Marks layers as about to be used by a root and waits for their conversions in
   * flight. Returns the release function (call it once the root is recorded).
   */
  async hold(diffIds: string[]): Promise<() => void> {
    for (const d of diffIds) this.held.set(d, (this.held.get(d) ?? 0) + 1);
    let done = false;
    const unhold = () => {
      if (done) return;
      done = true;
      for (const d of diffIds) {
        const n = (this.held.get(d) ?? 1) - 1;
        if (n > 0) this.held.set(d, n);
        else this.held.delete(d);
      }
    };
    try {
      await Promise.all(diffIds.map((d) => this.inFlight.get(d)).filter((p): p is Promise<void> => p !== undefined));
    } catch {}
    return unhold;
  }

  /** Resolves when every queued conversion has finished (for tests and shutdown). */
  async drain(): Promise<void> {
    await this.queue;
  }

  private dropUnusedDirs(): void {
    const used = this.inUse();
    for (const d of this.store.snapshots.convertedDirs()) if (!used.has(d)) this.store.snapshots.dropDir(d);
  }

  private enqueue(diffId: string): void {
    this.running++;
    const job = this.queue.then(() => this.convert(diffId));
    this.inFlight.set(diffId, job);
    this.queue = job
      .catch(() => {})
      .finally(() => {
        this.running--;
        if (this.inFlight.get(diffId) === job) this.inFlight.delete(diffId);
      });
  }

  private async convert(diffId: string): Promise<void> {
    const snaps = this.store.snapshots;
    // GC must not delete the layer while its image is being built.
    const unlease = this.store.lease([diffId]);
    const tmp = snaps.tempImage();
    try {
      if (snaps.hasImage(diffId)) return;
      const started = performance.now();
      await buildSquashfsFromDir(snaps.dirPath(diffId), tmp);
      if (!snaps.commitConverted(tmp, diffId)) return;
      this.converted++;
      if (!this.inUse().has(diffId)) snaps.dropDir(diffId);
      this.log.info("converted an unpacked layer to a layer image", { diffId, ms: Math.round(performance.now() - started) });
    } catch (err) {
      this.failed++;
      snaps.discardImage(tmp);
      // The directory still works as it did: the layer stays usable.
      this.log.warn("layer conversion failed; the unpacked directory stays in use", { diffId, error: err instanceof Error ? err.message : String(err) });
    } finally {
      unlease();
    }
  }
}
