/**
 * Loop mounts of layer images, shared and counted: each layer image is mounted once,
 * however many containers use it, and unmounted (its loop device freed) when the last
 * one goes. The count of a layer is the number of container roots whose image holds
 * it; the image database is the record, so a restarted imaged rebuilds the counts
 * from it and re-adopts what /proc/self/mounts shows as mounted instead of mounting
 * again (imaged exits when idle; the kernel keeps the mounts).
 *
 * Operations on one layer run one after another (a promise chain per layer), so a
 * mount and an unmount of the same layer never overlap.
 */
import { mkdirSync } from "node:fs";
import { mountedUnder, mountSquashfs, unmount } from "../platform/layer-image.ts";
import type { Snapshots } from "../storage/snapshots.ts";

export class LayerMounts {
  private counts = new Map<string, number>();
  private chains = new Map<string, Promise<void>>();
  private mounted = new Set<string>();

  constructor(private readonly snapshots: Snapshots) {}

  /**
   * At start: `inUse` lists, per container root, the layers of its image. Mounts
   * whatever is in use and not mounted (after a reboot), unmounts what nothing uses
   * (a crash between the last release and its unmount). A layer that cannot be
   * mounted or unmounted is reported, not fatal: imaged must still serve the rest.
   */
  async adopt(inUse: Iterable<string[]>): Promise<string[]> {
    this.mounted = mountedUnder(this.snapshots.mountDir);
    for (const layers of inUse) for (const d of new Set(layers)) if (this.snapshots.hasImage(d)) this.counts.set(d, (this.counts.get(d) ?? 0) + 1);
    const work: Promise<void>[] = [];
    for (const d of this.counts.keys()) work.push(this.run(d, () => this.ensureMounted(d)));
    const wanted = new Set([...this.counts.keys()].map((d) => this.snapshots.mountPath(d)));
    for (const path of this.mounted) if (!wanted.has(path)) work.push(unmount(path).then(() => void this.mounted.delete(path)));
    const results = await Promise.allSettled(work);
    return results.flatMap((r) => (r.status === "rejected" ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
  }

  private run(diffId: string, op: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(diffId) ?? Promise.resolve()).catch(() => {}).then(op);
    this.chains.set(diffId, next);
    void next
      .finally(() => {
        if (this.chains.get(diffId) === next) this.chains.delete(diffId);
      })
      .catch(() => {});
    return next;
  }

  private async ensureMounted(diffId: string): Promise<void> {
    const target = this.snapshots.mountPath(diffId);
    if (this.mounted.has(target)) return;
    mkdirSync(target, { recursive: true, mode: 0o755 });
    await mountSquashfs(this.snapshots.imagePath(diffId), target);
    this.mounted.add(target);
  }

  private async unmountIfUnused(diffId: string): Promise<void> {
    if ((this.counts.get(diffId) ?? 0) > 0) return;
    const target = this.snapshots.mountPath(diffId);
    if (!this.mounted.has(target)) return;
    await unmount(target);
    this.mounted.delete(target);
  }

  /** One more user of these layers: mounts each image layer not mounted yet. Undoes itself on failure. */
  async acquire(diffIds: string[]): Promise<void> {
    const layers = [...new Set(diffIds)].filter((d) => this.snapshots.hasImage(d));
    for (const d of layers) this.counts.set(d, (this.counts.get(d) ?? 0) + 1);
    const results = await Promise.allSettled(layers.map((d) => this.run(d, () => this.ensureMounted(d))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await this.release(diffIds);
      throw failed.reason;
    }
  }

  /** One user fewer: unmounts each layer nothing uses any more. */
  async release(diffIds: string[]): Promise<void> {
    const layers = [...new Set(diffIds)].filter((d) => this.counts.has(d));
    for (const d of layers) {
      const n = (this.counts.get(d) ?? 1) - 1;
      if (n > 0) this.counts.set(d, n);
      else this.counts.delete(d);
    }
    await Promise.all(layers.map((d) => this.run(d, () => this.unmountIfUnused(d))));
  }

  /** Unmounts a layer about to be deleted, if it is still mounted (nothing counts it). */
  async forget(diffId: string): Promise<void> {
    this.counts.delete(diffId);
    await this.run(diffId, () => this.unmountIfUnused(diffId));
  }

  isMounted(diffId: string): boolean {
    return this.mounted.has(this.snapshots.mountPath(diffId));
  }

  stats(): { mounted: number; counted: number } {
    return { mounted: this.mounted.size, counted: this.counts.size };
  }
}
