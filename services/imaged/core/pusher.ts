/**
 * docker push: uploads the config and layer blobs the registry lacks (HEAD first,
 * three at a time), then the manifest, with the progress messages the CLI renders.
 * Layers go up as the compressed blobs imaged stored when pulling or loading, so
 * a pushed image keeps its digests.
 */
import { openRepo, type Credentials, type RepoSession } from "../platform/registry-client.ts";
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { digestOf, MT, parseJson, type ImageManifest } from "./manifest.ts";
import { progressThrottle, shortId, withConcurrency, type Emit } from "./progress.ts";
import { formatReference, parseReference, repository, withDefaultTag, familiarRepository, type Reference } from "./reference.ts";
import type { RegistryConfig } from "./registry-config.ts";
import type { ImageRow, LayerRow } from "../storage/image-db.ts";

const MAX_CONCURRENT_UPLOADS = 3;

export class Pusher {
  constructor(
    private readonly store: ImageStore,
    private readonly registryConfig: () => RegistryConfig,
  ) {}

  async push(opts: { reference: string; creds?: Credentials }, emit: Emit): Promise<void> {
    const ref = parseReference(opts.reference);
    if (ref.digest) throw new ImageError("invalid_argument", "cannot push a digest reference");
    const repoName = repository(ref);
    // Without a tag, every local tag of the repository goes (as Docker does).
    const tags = ref.tag
      ? [ref.tag]
      : this.store.db.allImages().flatMap((img) =>
          this.store.db
            .tagsOf(img.id)
            .map((t) => parseReference(t.name))
            .filter((r) => repository(r) === repoName)
            .map((r) => r.tag!),
        );
    if (tags.length === 0) throw new ImageError("not_found", `An image does not exist locally with the tag: ${familiarRepository(repoName)}`);
    const targets = tags.map((tag) => {
      const r = withDefaultTag({ ...ref, tag });
      const id = this.store.db.tagTarget(formatReference(r));
      if (!id) throw new ImageError("not_found", `An image does not exist locally with the tag: ${familiarRepository(repoName)}${ref.tag ? `:${ref.tag}` : ""}`);
      return { ref: r, img: this.store.db.getImage(id)! };
    });
    const session = openRepo(this.registryConfig(), ref.domain, ref.path, opts.creds, "pull,push");
    emit({ status: `The push refers to repository [${familiarRepository(repoName)}]` });
    for (const t of targets) await this.pushOne(session, t.ref, t.img, emit);
  }

  /** A manifest to push: blobs to upload first, then its bytes. */
  private plan(img: ImageRow): PushPlan {
    const configBytes = new TextEncoder().encode(img.config);
    if (digestOf(configBytes) !== img.id) throw new ImageError("internal", `stored config of ${img.id} does not match its digest`);
    // The manifest the image was pulled with, verbatim, when all its blobs are here:
    // the pushed digest then matches the source registry's.
    for (const m of this.store.db.manifestsOf(img.id)) {
      if (!this.store.content.has(m.digest)) continue;
      const bytes = this.store.content.read(m.digest);
      const doc = parseJson<ImageManifest>(bytes, "manifest");
      if (doc.config?.digest !== img.id || !doc.layers.every((l) => this.store.content.has(l.digest))) continue;
      return { mediaType: m.mediaType || doc.mediaType || MT.dockerManifest, bytes, configBytes, layers: doc.layers.map((l) => ({ digest: l.digest, size: l.size })) };
    }
    const layers: LayerRow[] = img.diffIds.map((d) => {
      const l = this.store.db.getLayer(d);
      if (!l || !this.store.content.has(l.blobDigest)) throw new ImageError("failed_precondition", `layer ${d} of ${img.id} has no stored blob to push`);
      return l;
    });
    const oci = layers.some((l) => l.mediaType.startsWith("application/vnd.oci."));
    const mediaType = oci ? MT.ociManifest : MT.dockerManifest;
    const bytes = new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: oci ? MT.ociConfig : MT.dockerConfig, size: configBytes.length, digest: img.id },
        layers: layers.map((l) => ({ mediaType: oci ? toOci(l.mediaType) : toDocker(l.mediaType), size: l.blobSize, digest: l.blobDigest })),
      }),
    );
    return { mediaType, bytes, configBytes, layers: layers.map((l) => ({ digest: l.blobDigest, size: l.blobSize })) };
  }

  /** Repositories on the target registry that this image came from or went to. */
  private mountSources(img: ImageRow, ref: Reference): string[] {
    const names = [...this.store.db.digestsOf(img.id), ...this.store.db.tagsOf(img.id).map((t) => t.name)];
    const out = new Set<string>();
    for (const n of names) {
      const r = parseReference(n);
      if (r.domain === ref.domain && r.path !== ref.path) out.add(r.path);
    }
    return [...out].slice(0, 3);
  }

  private async pushOne(session: RepoSession, ref: Reference, img: ImageRow, emit: Emit): Promise<void> {
    const plan = this.plan(img);
    const release = this.store.lease([img.id, ...plan.layers.map((l) => l.digest)]);
    try {
      // Topmost first, as Docker lists them.
      const order = [...plan.layers].reverse();
      for (const l of order) emit({ id: shortId(l.digest), status: "Preparing" });
      for (const l of order.slice(MAX_CONCURRENT_UPLOADS)) emit({ id: shortId(l.digest), status: "Waiting" });
      const seen = new Set<string>();
      const mountSources = this.mountSources(img, ref);
      await withConcurrency(order, MAX_CONCURRENT_UPLOADS, async (l) => {
        const id = shortId(l.digest);
        if (seen.has(l.digest)) return;
        seen.add(l.digest);
        if (await session.hasBlob(l.digest)) {
          emit({ id, status: "Layer already exists" });
          return;
        }
        // Same registry, another repository we know has the image: link instead of upload.
        for (const from of mountSources) {
          if (await session.mountBlob(l.digest, from)) {
            emit({ id, status: `Mounted from ${familiarRepository(`${ref.domain}/${from}`)}` });
            return;
          }
        }
        await session.uploadBlob(l.digest, Bun.file(this.store.content.path(l.digest)), progressThrottle(emit, id, "Pushing", l.size));
        emit({ id, status: "Pushed" });
      });
      if (!(await session.hasBlob(img.id))) await session.uploadBlob(img.id, new Blob([plan.configBytes]));
      await session.putManifest(ref.tag!, plan.mediaType, plan.bytes);
      const digest = digestOf(plan.bytes);
      this.store.db.setDigest(`${repository(ref)}@${digest}`, img.id, digest);
      emit({ status: `${ref.tag}: digest: ${digest} size: ${plan.bytes.length}` });
      emit({ id: "", status: "", aux: { Tag: ref.tag, Digest: digest, Size: plan.bytes.length } });
    } finally {
      release();
    }
  }
}

interface PushPlan {
  mediaType: string;
  bytes: Uint8Array;
  configBytes: Uint8Array;
  layers: { digest: string; size: number }[];
}

function toOci(mt: string): string {
  if (mt === MT.dockerLayerGzip) return MT.ociLayerGzip;
  if (mt === MT.dockerLayer) return MT.ociLayer;
  return mt;
}

function toDocker(mt: string): string {
  if (mt === MT.ociLayerGzip) return MT.dockerLayerGzip;
  if (mt === MT.ociLayer) return MT.dockerLayer;
  return mt;
}
