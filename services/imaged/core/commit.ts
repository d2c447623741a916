/**
 * docker commit: a container's upper directory becomes a new gzip layer (stored as a
 * blob, then turned into a layer image like any pulled layer) on top of its image,
 * with a config derived from the parent's (or the one given) and the changes applied.
 *
 * The builder uses the same path without a container: a directory it filled (COPY,
 * ADD) becomes a layer over a parent image (or none, for `FROM scratch`), and a
 * metadata-only step makes a child image with a new config and no layer.
 */
import { chmodSync, lchownSync, lstatSync, readdirSync, utimesSync, type Stats } from "node:fs";
import { join } from "node:path";
import { diffTar } from "../platform/tar-diff.ts";
import { applyChanges } from "./changes.ts";
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { ingestLayer } from "./layer-ingest.ts";
import { MT, type ImageConfig } from "./manifest.ts";
import { formatReference, parseReference, withDefaultTag } from "./reference.ts";
import type { ImageRow } from "../storage/image-db.ts";

export interface CommitOptions {
  containerId: string;
  reference: string;
  comment: string;
  author: string;
  configJson: string;
  changes: string[];
  createdBy: string;
  /** Without a container: the parent image ("" = none, scratch). */
  parentImage?: string;
  /** Without a container: the directory whose tree becomes the layer ("" = no layer). */
  layerDir?: string;
  /** Without a container: a layer already in the store that becomes the new layer. */
  layerDiffId?: string;
  /** With a container: its layer as a tar file (VM mode: the upper dir is in the engine machine). */
  layerTar?: string;
}

interface Source {
  parent: ImageRow | undefined;
  /** The directory tarred into the new layer; undefined = a config-only image. */
  layerRoot: string | undefined;
  /** Or the new layer's tar, made elsewhere. */
  layerTar?: string;
}

function sourceOf(store: ImageStore, o: CommitOptions): Source {
  if (o.containerId) {
    const parentId = store.db.containerImage(o.containerId);
    if (!parentId) throw new ImageError("not_found", `container ${o.containerId} has no root filesystem prepared by imaged`);
    const parent = store.db.getImage(parentId);
    if (!parent) throw new ImageError("failed_precondition", `the image of container ${o.containerId} was removed`);
    if (o.layerTar) {
      if (!o.layerTar.startsWith("/")) throw new ImageError("invalid_argument", "layer_tar must be an absolute path");
      return { parent, layerRoot: undefined, layerTar: o.layerTar };
    }
    return { parent, layerRoot: store.snapshots.containerPaths(o.containerId).upper };
  }
  const parent = o.parentImage ? store.resolve(o.parentImage) : undefined;
  if (o.layerDir) {
    if (!o.layerDir.startsWith("/")) throw new ImageError("invalid_argument", "layer_dir must be an absolute path");
    if (parent) inheritDirAttributes(o.layerDir, parent.diffIds.map((d) => store.snapshots.layerPath(d)).reverse());
  }
  return { parent, layerRoot: o.layerDir || undefined };
}

/**
 * A directory that the new layer only passes through (say /tmp of `COPY x /tmp/`)
 * keeps the parent's owner and mode: the layer's entry would otherwise replace them.
 */
function inheritDirAttributes(root: string, lowersTopFirst: string[]): void {
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const childRel = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, childRel));
      if (!st.isDirectory()) continue;
      for (const lower of lowersTopFirst) {
        const l = lstatInLayer(lower, childRel);
        if (l === "absent") continue;
        if (l !== "shadowed") {
          lchownSync(join(root, childRel), l.uid, l.gid);
          chmodSync(join(root, childRel), l.mode & 0o7777);
          utimesSync(join(root, childRel), l.atime, l.mtime);
        }
        break;
      }
      walk(childRel);
    }
  };
  walk("");
}

/**
 * lstat of `rel` inside one (read-only, mounted) layer without following the layer's
 * own symlinks: a pulled layer may hold `tmp -> /etc`, and a plain lstat of
 * `<layer>/tmp/x` would then read the host's /etc/x. A non-directory on the way
 * shadows the path in the merged view ("shadowed"); a missing one leaves it to the
 * layers below ("absent").
 */
function lstatInLayer(layer: string, rel: string): Stats | "absent" | "shadowed" {
  let path = layer;
  const parts = rel.split("/");
  for (let i = 0; i < parts.length; i++) {
    path = join(path, parts[i]!);
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      return "absent";
    }
    if (!st.isDirectory()) return "shadowed";
    if (i === parts.length - 1) return st;
  }
  return "absent";
}

async function writeLayer(store: ImageStore, source: { root: string } | { tar: string }): Promise<{ blobDigest: string; diffId: string }> {
  const diffHasher = new Bun.CryptoHasher("sha256");
  const blob = store.content.writer();
  try {
    // Pulled: the diff is read as gzip takes it, so a large commit is never all in memory.
    const chunks = "root" in source ? diffTar(source.root) : (Bun.file(source.tar).stream() as unknown as AsyncIterable<Uint8Array>);
    const it = chunks[Symbol.asyncIterator]();
    const tar = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const r = await it.next();
        if (r.done) return controller.close();
        diffHasher.update(r.value);
        controller.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    });
    const gzip = new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
    for await (const gz of tar.pipeThrough(gzip)) blob.write(gz);
    return { blobDigest: blob.commit(), diffId: `sha256:${diffHasher.digest("hex")}` };
  } catch (err) {
    blob.abort();
    throw err;
  }
}

export async function commitContainer(store: ImageStore, o: CommitOptions): Promise<string> {
  const { parent, layerRoot, layerTar } = sourceOf(store, o);
  const target = o.reference ? withDefaultTag(parseReference(o.reference)) : undefined;
  if (target?.digest) throw new ImageError("invalid_argument", "cannot commit to a digest reference");
  const parentConfig: ImageConfig = parent ? store.config(parent) : { architecture: process.arch === "arm64" ? "arm64" : "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } };
  let containerConfig = parentConfig.config ?? {};
  if (o.configJson) {
    try {
      containerConfig = JSON.parse(o.configJson) as Record<string, unknown>;
    } catch {
      throw new ImageError("invalid_argument", "config_json is not valid JSON");
    }
  }
  containerConfig = applyChanges(containerConfig, o.changes);
  const parentDiffIds = parent?.diffIds ?? [];

  const reused = !o.containerId && o.layerDiffId ? store.db.getLayer(o.layerDiffId) : undefined;
  if (!o.containerId && o.layerDiffId && (!reused || !store.snapshots.hasLayer(o.layerDiffId))) throw new ImageError("not_found", `layer ${o.layerDiffId} is not in the store`);
  const layer = reused
    ? { blobDigest: reused.blobDigest, diffId: reused.diffId }
    : layerTar
      ? await writeLayer(store, { tar: layerTar })
      : layerRoot
        ? await writeLayer(store, { root: layerRoot })
        : undefined;
  const releases = layer ? [store.lease([layer.blobDigest, layer.diffId])] : [];
  try {
    const layers = parentDiffIds.map((d) => store.db.getLayer(d)!);
    if (reused) layers.push(reused);
    else if (layer) {
      const path = store.content.path(layer.blobDigest);
      const size = Bun.file(path).size;
      const res = await ingestLayer({
        body: Bun.file(path).stream(),
        digest: layer.blobDigest,
        size,
        compression: "gzip",
        expectedDiffId: layer.diffId,
        store: store.content,
        snapshots: store.snapshots,
        writeBlob: false,
      });
      layers.push({ diffId: layer.diffId, size: res.size, blobDigest: layer.blobDigest, mediaType: MT.dockerLayerGzip, blobSize: size });
    }
    const now = new Date().toISOString();
    const config: ImageConfig = {
      ...parentConfig,
      created: now,
      ...(o.author ? { author: o.author } : {}),
      ...(o.comment ? { comment: o.comment } : {}),
      config: containerConfig,
      rootfs: { type: "layers", diff_ids: layer ? [...parentDiffIds, layer.diffId] : parentDiffIds },
      history: [
        ...(parentConfig.history ?? []),
        { created: now, created_by: o.createdBy, ...(o.author ? { author: o.author } : {}), ...(o.comment ? { comment: o.comment } : {}), ...(layer ? {} : { empty_layer: true }) },
      ],
    };
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDigest = store.content.put(configBytes);
    const img = store.record({ config: configBytes, configDigest, layers });
    if (parent) store.db.setParent(img.id, parent.id);
    if (target) store.db.setTag(formatReference(target), img.id);
    return img.id;
  } finally {
    for (const r of releases) r();
  }
}
