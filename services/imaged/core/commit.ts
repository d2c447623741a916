/**
 * docker commit: a container's upper directory becomes a new gzip layer (stored as a
 * blob, then unpacked into a snapshot like any pulled layer) on top of its image,
 * with a config derived from the parent's (or the one given) and the changes applied.
 */
import { diffTar } from "../platform/tar-diff.ts";
import { applyChanges } from "./changes.ts";
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { ingestLayer } from "./layer-ingest.ts";
import { MT, type ImageConfig } from "./manifest.ts";
import { formatReference, parseReference, withDefaultTag } from "./reference.ts";

export interface CommitOptions {
  containerId: string;
  reference: string;
  comment: string;
  author: string;
  configJson: string;
  changes: string[];
  createdBy: string;
}

export async function commitContainer(store: ImageStore, o: CommitOptions): Promise<string> {
  const parentId = store.db.containerImage(o.containerId);
  if (!parentId) throw new ImageError("not_found", `container ${o.containerId} has no root filesystem prepared by imaged`);
  const parent = store.db.getImage(parentId);
  if (!parent) throw new ImageError("failed_precondition", `the image of container ${o.containerId} was removed`);
  const target = o.reference ? withDefaultTag(parseReference(o.reference)) : undefined;
  if (target?.digest) throw new ImageError("invalid_argument", "cannot commit to a digest reference");
  const parentConfig = store.config(parent);
  let containerConfig = parentConfig.config ?? {};
  if (o.configJson) {
    try {
      containerConfig = JSON.parse(o.configJson) as Record<string, unknown>;
    } catch {
      throw new ImageError("invalid_argument", "config_json is not valid JSON");
    }
  }
  containerConfig = applyChanges(containerConfig, o.changes);

  const { upper } = store.snapshots.containerPaths(o.containerId);
  const diffHasher = new Bun.CryptoHasher("sha256");
  const blob = store.content.writer();
  let blobDigest: string;
  try {
    const tar = new ReadableStream<Uint8Array>({
      async start(controller) {
        try {
          for await (const chunk of diffTar(upper)) {
            diffHasher.update(chunk);
            controller.enqueue(chunk);
          }
          controller.close();
        } catch (err) {
          controller.error(err);
        }
      },
    });
    const gzip = new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
    for await (const gz of tar.pipeThrough(gzip)) blob.write(gz);
    blobDigest = blob.commit();
  } catch (err) {
    blob.abort();
    throw err;
  }
  const diffId = `sha256:${diffHasher.digest("hex")}`;
  const releases = [store.lease([blobDigest, diffId])];
  try {
    const path = store.content.path(blobDigest);
    const size = Bun.file(path).size;
    const res = await ingestLayer({ body: Bun.file(path).stream(), digest: blobDigest, size, compression: "gzip", expectedDiffId: diffId, store: store.content, snapshots: store.snapshots, writeBlob: false });
    const now = new Date().toISOString();
    const config: ImageConfig = {
      ...parentConfig,
      created: now,
      ...(o.author ? { author: o.author } : {}),
      ...(o.comment ? { comment: o.comment } : {}),
      config: containerConfig,
      rootfs: { type: "layers", diff_ids: [...parent.diffIds, diffId] },
      history: [...(parentConfig.history ?? []), { created: now, created_by: o.createdBy, ...(o.author ? { author: o.author } : {}), ...(o.comment ? { comment: o.comment } : {}) }],
    };
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDigest = store.content.put(configBytes);
    const layers = parent.diffIds.map((d) => store.db.getLayer(d)!);
    layers.push({ diffId, size: res.size, blobDigest, mediaType: MT.dockerLayerGzip, blobSize: size });
    const img = store.record({ config: configBytes, configDigest, layers });
    if (target) store.db.setTag(formatReference(target), img.id);
    return img.id;
  } finally {
    for (const r of releases) r();
  }
}
