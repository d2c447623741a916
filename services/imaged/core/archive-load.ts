/**
 * docker load: reads a docker-archive (manifest.json) or OCI layout (index.json) tar
 * as it streams in. Small JSON files stay in memory; every other file is spooled
 * into the content store under its digest (hashed while written). Afterwards each
 * image's layers are unpacked from the stored blobs, verified against the config's
 * diff IDs, and the image is recorded and tagged.
 */
import { posix } from "node:path";
import { readTar } from "../platform/tar-stream.ts";
import type { LayerRow } from "../storage/image-db.ts";
import type { BlobWriter } from "../storage/content-store.ts";
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { ingestLayer } from "./layer-ingest.ts";
import { digestOf, MT, parseJson, type Compression, type ImageConfig, type ImageIndex, type ImageManifest } from "./manifest.ts";
import { shortId, type Emit } from "./progress.ts";
import { familiar, formatReference, parseReference, withDefaultTag } from "./reference.ts";

const SMALL = 1 << 20;

interface ArchiveEntry {
  small?: Uint8Array;
  digest?: string;
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Sniffs a stored blob's compression from its magic bytes. */
export async function sniffCompression(path: string): Promise<Compression> {
  const head = new Uint8Array(await Bun.file(path).slice(0, 4).arrayBuffer());
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

const mediaTypeFor = (c: Compression) => (c === "gzip" ? MT.dockerLayerGzip : c === "zstd" ? MT.ociLayerZstd : MT.dockerLayer);

export async function loadArchive(store: ImageStore, body: ReadableStream<Uint8Array>, emit: Emit): Promise<void> {
  const files = new Map<string, ArchiveEntry>();
  const links = new Map<string, string>();
  const spooled: string[] = [];
  const release = store.lease(spooled);
  const releases: (() => void)[] = [release];
  try {
    await readTar(body, (h) => {
      const name = posix.normalize(h.name).replace(/^\.?\/+/, "");
      if (h.type === "2" || h.type === "1") {
        links.set(name, h.type === "2" ? posix.normalize(posix.join(posix.dirname(name), h.linkname)) : posix.normalize(h.linkname));
        return undefined;
      }
      if (h.type !== "0" && h.type !== "7") return undefined;
      if (h.size <= SMALL && (name.endsWith(".json") || name === "repositories" || name === "oci-layout" || (name.startsWith("blobs/") && h.size <= 64 << 10))) {
        const buf = new Uint8Array(h.size);
        let fill = 0;
        return {
          write: (c) => {
            buf.set(c, fill);
            fill += c.length;
          },
          end: () => void files.set(name, { small: buf }),
        };
      }
      const w: BlobWriter = store.content.writer();
      return {
        write: (c) => w.write(c),
        end: () => {
          const digest = w.commit();
          releases.push(store.lease([digest]));
          files.set(name, { digest });
        },
      };
    });

    const resolve = (p: string): ArchiveEntry | undefined => {
      let name = posix.normalize(p).replace(/^\.?\/+/, "");
      for (let i = 0; i < 8 && !files.has(name) && links.has(name); i++) name = links.get(name)!;
      return files.get(name);
    };
    const bytesOf = async (p: string): Promise<Uint8Array> => {
      const e = resolve(p);
      if (!e) throw new ImageError("invalid_argument", `invalid archive: ${p} is missing`);
      return e.small ?? new Uint8Array(await Bun.file(store.content.path(e.digest!)).arrayBuffer());
    };

    let entries: DockerManifestEntry[];
    if (resolve("manifest.json")) {
      entries = parseJson<DockerManifestEntry[]>(await bytesOf("manifest.json"), "manifest.json");
    } else if (resolve("index.json")) {
      entries = await fromOciLayout(parseJson<ImageIndex>(await bytesOf("index.json"), "index.json"), bytesOf);
    } else {
      throw new ImageError("invalid_argument", "invalid archive: neither manifest.json nor index.json found (is this a docker save archive?)");
    }

    for (const entry of entries) {
      const configBytes = await bytesOf(entry.Config);
      const configDigest = digestOf(configBytes);
      const config = parseJson<ImageConfig>(configBytes, "image config");
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== entry.Layers.length)
        throw new ImageError("invalid_argument", `invalid archive: ${entry.Config} lists ${diffIds.length} layers but manifest.json has ${entry.Layers.length}`);
      releases.push(store.lease([configDigest, ...diffIds]));
      store.content.put(configBytes, configDigest);
      const layers: LayerRow[] = [];
      for (let i = 0; i < entry.Layers.length; i++) {
        const diffId = diffIds[i]!;
        const have = store.db.getLayer(diffId);
        if (have && store.snapshots.hasLayer(diffId) && store.content.has(have.blobDigest)) {
          layers.push(have);
          continue;
        }
        let e = resolve(entry.Layers[i]!);
        if (e?.small) e = { digest: store.content.put(e.small) };
        if (!e?.digest) throw new ImageError("invalid_argument", `invalid archive: layer ${entry.Layers[i]} is missing`);
        const path = store.content.path(e.digest);
        const compression = await sniffCompression(path);
        emit({ id: shortId(diffId), status: "Loading layer" });
        const size = Bun.file(path).size;
        const res = await ingestLayer({
          body: Bun.file(path).stream(),
          digest: e.digest,
          size,
          compression,
          expectedDiffId: diffId,
          store: store.content,
          snapshots: store.snapshots,
          writeBlob: false,
        });
        const row: LayerRow = { diffId: res.diffId, size: res.size, blobDigest: e.digest, mediaType: mediaTypeFor(compression), blobSize: size };
        store.db.putLayer(row);
        layers.push(row);
      }
      const img = store.record({ config: configBytes, configDigest, layers });
      const tags = entry.RepoTags ?? [];
      for (const t of tags) {
        const name = formatReference(withDefaultTag(parseReference(t)));
        const prev = store.db.setTag(name, img.id);
        if (prev && prev !== img.id) emit({ stream: `The image ${familiar(name)} already exists, renaming the old one with ID ${prev} to empty string\n` });
        emit({ stream: `Loaded image: ${familiar(name)}\n` });
      }
      if (tags.length === 0) emit({ stream: `Loaded image ID: ${img.id}\n` });
    }
  } finally {
    for (const r of releases) r();
    // Spooled files no image references (e.g. a failed load) go now.
    store.collectGarbage();
  }
}

async function fromOciLayout(index: ImageIndex, bytesOf: (p: string) => Promise<Uint8Array>): Promise<DockerManifestEntry[]> {
  const out: DockerManifestEntry[] = [];
  for (const d of index.manifests ?? []) {
    const m = parseJson<ImageManifest & ImageIndex>(await bytesOf(`blobs/sha256/${d.digest.slice(7)}`), "manifest");
    if (!m.config) continue;
    const name = d.annotations?.["io.containerd.image.name"];
    out.push({ Config: `blobs/sha256/${m.config.digest.slice(7)}`, RepoTags: name ? [name] : [], Layers: m.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) });
  }
  return out;
}
