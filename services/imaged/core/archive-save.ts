/**
 * docker save: a tar that is both a docker-archive (manifest.json, repositories,
 * what `docker load` of every Docker version reads) and an OCI image layout
 * (oci-layout, index.json, blobs/sha256/...). Layer files are the stored blobs,
 * streamed from disk in 1 MiB chunks.
 */
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { digestOf, MT } from "./manifest.ts";
import { familiar, familiarRepository, formatReference, parseReference, repository, withDefaultTag, looksLikeId } from "./reference.ts";
import { TAR_END, tarHeader, tarPadding } from "../platform/tar-stream.ts";
import type { ImageRow } from "../storage/image-db.ts";

interface Selected {
  img: ImageRow;
  /** Full names ("domain/path:tag") to record for this image. */
  tags: Set<string>;
}

function select(store: ImageStore, references: string[]): Selected[] {
  const byId = new Map<string, Selected>();
  const add = (img: ImageRow, tag?: string) => {
    const s = byId.get(img.id) ?? { img, tags: new Set<string>() };
    if (tag) s.tags.add(tag);
    byId.set(img.id, s);
  };
  if (references.length === 0) {
    for (const img of store.db.allImages()) for (const t of store.db.tagsOf(img.id)) add(img, t.name);
  }
  for (const r of references) {
    const img = store.resolve(r);
    const isId = looksLikeId(r) && !store.db.tagTarget(formatReference(withDefaultTag(parseReference(r.replace(/^sha256:/, "")))));
    if (isId) add(img);
    else {
      const ref = withDefaultTag(parseReference(r));
      add(img, ref.digest ? undefined : formatReference(ref));
    }
  }
  return [...byId.values()];
}

export async function* saveArchive(store: ImageStore, references: string[]): AsyncGenerator<Uint8Array> {
  const selected = select(store, references);
  if (selected.length === 0) throw new ImageError("invalid_argument", "no images to save");
  const keys = selected.flatMap((s) => [s.img.id, ...s.img.diffIds]);
  const release = store.lease(keys);
  try {
    const written = new Set<string>();
    const manifestJson: unknown[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const indexEntries: unknown[] = [];
    const enc = new TextEncoder();

    async function* file(name: string, data: Uint8Array): AsyncGenerator<Uint8Array> {
      yield tarHeader(name, data.length);
      yield data;
      yield tarPadding(data.length);
    }

    async function* blobFile(digest: string, path: string): AsyncGenerator<Uint8Array> {
      const f = Bun.file(path);
      yield tarHeader(`blobs/sha256/${digest.slice(7)}`, f.size);
      for await (const chunk of f.stream()) yield chunk;
      yield tarPadding(f.size);
    }

    yield tarHeader("blobs/", 0, "5");
    yield tarHeader("blobs/sha256/", 0, "5");
    for (const { img, tags } of selected) {
      const layers = img.diffIds.map((d) => {
        const l = store.db.getLayer(d);
        if (!l || !store.content.has(l.blobDigest)) throw new ImageError("failed_precondition", `layer ${d} of ${img.id} has no stored blob`);
        return l;
      });
      const config = enc.encode(img.config);
      if (!written.has(img.id)) {
        written.add(img.id);
        yield* file(`blobs/sha256/${img.id.slice(7)}`, config);
      }
      for (const l of layers) {
        if (written.has(l.blobDigest)) continue;
        written.add(l.blobDigest);
        yield* blobFile(l.blobDigest, store.content.path(l.blobDigest));
      }
      const manifest = enc.encode(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.ociManifest,
          config: { mediaType: MT.ociConfig, digest: img.id, size: config.length },
          layers: layers.map((l) => ({ mediaType: l.mediaType.replace(MT.dockerLayerGzip, MT.ociLayerGzip).replace(MT.dockerLayer, MT.ociLayer), digest: l.blobDigest, size: l.blobSize })),
        }),
      );
      const manifestDigest = digestOf(manifest);
      if (!written.has(manifestDigest)) {
        written.add(manifestDigest);
        yield* file(`blobs/sha256/${manifestDigest.slice(7)}`, manifest);
      }
      const repoTags = [...tags].map((t) => familiar(t));
      manifestJson.push({ Config: `blobs/sha256/${img.id.slice(7)}`, RepoTags: repoTags, Layers: layers.map((l) => `blobs/sha256/${l.blobDigest.slice(7)}`) });
      for (const t of tags) {
        const ref = parseReference(t);
        (repositories[familiarRepository(repository(ref))] ??= {})[ref.tag!] = img.id.slice(7);
      }
      const names = [...tags];
      for (const name of names.length ? names : [undefined]) {
        indexEntries.push({
          mediaType: MT.ociManifest,
          digest: manifestDigest,
          size: manifest.length,
          ...(name ? { annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": parseReference(name).tag } } : {}),
        });
      }
    }
    yield* file("index.json", enc.encode(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: indexEntries })));
    yield* file("manifest.json", enc.encode(JSON.stringify(manifestJson)));
    yield* file("oci-layout", enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
    if (Object.keys(repositories).length) yield* file("repositories", enc.encode(JSON.stringify(repositories)));
    yield TAR_END;
  } finally {
    release();
  }
}
