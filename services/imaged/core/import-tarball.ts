/**
 * docker import: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer
 * image. The upload is stored as a blob while it streams in, then unpacked; the
 * config gets the platform, the `--change` instructions and the commit message.
 */
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { ingestLayer } from "./layer-ingest.ts";
import { MT, parsePlatform, type ImageConfig } from "./manifest.ts";
import type { Emit } from "./progress.ts";
import { formatReference, parseReference, withDefaultTag } from "./reference.ts";
import { sniffCompression } from "./archive-load.ts";
import { applyChanges } from "./changes.ts";

export interface ImportOptions {
  repo: string;
  tag: string;
  message: string;
  changes: string[];
  platform: string;
}

export async function importTarball(store: ImageStore, body: ReadableStream<Uint8Array>, opts: ImportOptions, emit: Emit): Promise<void> {
  const target = opts.repo ? withDefaultTag(parseReference(opts.tag ? `${opts.repo}:${opts.tag}` : opts.repo)) : undefined;
  if (target?.digest) throw new ImageError("invalid_argument", "cannot import to a digest reference");
  const containerConfig = applyChanges({}, opts.changes);
  const w = store.content.writer();
  let blobDigest: string;
  try {
    for await (const chunk of body) w.write(chunk);
    blobDigest = w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
  const releases = [store.lease([blobDigest])];
  try {
    const path = store.content.path(blobDigest);
    const compression = await sniffCompression(path);
    const size = Bun.file(path).size;
    const res = await ingestLayer({ body: Bun.file(path).stream(), digest: blobDigest, size, compression, store: store.content, snapshots: store.snapshots, writeBlob: false });
    releases.push(store.lease([res.diffId]));
    const platform = parsePlatform(opts.platform);
    const now = new Date().toISOString();
    const config: ImageConfig = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: now,
      ...(opts.message ? { comment: opts.message } : {}),
      config: containerConfig,
      rootfs: { type: "layers", diff_ids: [res.diffId] },
      history: [{ created: now, comment: opts.message || "Imported from -" }],
    };
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDigest = store.content.put(configBytes);
    const mediaType = compression === "gzip" ? MT.dockerLayerGzip : compression === "zstd" ? MT.ociLayerZstd : MT.dockerLayer;
    const img = store.record({ config: configBytes, configDigest, layers: [{ diffId: res.diffId, size: res.size, blobDigest, mediaType, blobSize: size }] });
    if (target) store.db.setTag(formatReference(target), img.id);
    emit({ status: img.id });
  } finally {
    for (const r of releases) r();
    store.collectGarbage();
  }
}
