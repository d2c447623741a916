/**
 * docker pull: resolves the manifest (selecting a platform from an index), fetches
 * the config, then downloads and unpacks the missing layers concurrently, emitting
 * the progress messages the docker CLI renders. The image is recorded (and tagged)
 * only after every layer verified. Concurrent pulls of the same layer share one download.
 */
import { openRepo, type Credentials } from "../platform/registry-client.ts";
import { ImageError } from "./errors.ts";
import type { ImageStore } from "./image-store.ts";
import { ingestLayer } from "./layer-ingest.ts";
import {
  configMatches,
  digestOf,
  formatPlatform,
  isIndex,
  layerCompression,
  parseJson,
  parsePlatform,
  selectManifest,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from "./manifest.ts";
import { progressThrottle, shortId, withConcurrency, type Emit } from "./progress.ts";
import { familiar, familiarRepository, formatReference, parseReference, repository, withDefaultTag } from "./reference.ts";
import type { RegistryConfig } from "./registry-config.ts";
import type { LayerRow } from "../storage/image-db.ts";
import type { BlobWriter } from "../storage/content-store.ts";

const MAX_CONCURRENT_DOWNLOADS = 3;

export interface PullOptions {
  reference: string;
  platform?: string;
  creds?: Credentials;
}

export class Puller {
  /** diffId -> in-flight unpack, shared by concurrent pulls. */
  private inflight = new Map<string, Promise<LayerRow>>();

  constructor(
    private readonly store: ImageStore,
    private readonly registryConfig: () => RegistryConfig,
  ) {}

  /** docker pull -a: every tag of the repository, one after the other. */
  async pullAllTags(opts: PullOptions, emit: Emit): Promise<void> {
    const ref = parseReference(opts.reference);
    if (ref.tag || ref.digest) throw new ImageError("invalid_argument", "tag can't be used with --all-tags/-a");
    const repo = openRepo(this.registryConfig(), ref.domain, ref.path, opts.creds, "pull");
    const tags = (await repo.tags()).sort();
    if (tags.length === 0) throw new ImageError("not_found", `repository ${familiarRepository(repository(ref))} has no tags`);
    let changed = false;
    for (const tag of tags) {
      const before = this.store.db.tagTarget(formatReference({ ...ref, tag }));
      const id = await this.pull({ ...opts, reference: formatReference({ ...ref, tag }) }, emit, false);
      changed ||= before !== id;
    }
    const name = familiarRepository(repository(ref));
    emit({ status: changed ? `Status: Downloaded newer image for ${name}` : `Status: Image is up to date for ${name}` });
  }

  async pull(opts: PullOptions, emit: Emit, finalStatus = true): Promise<string> {
    const ref = withDefaultTag(parseReference(opts.reference));
    const display = familiar(formatReference(ref));
    const repo = openRepo(this.registryConfig(), ref.domain, ref.path, opts.creds, "pull");
    const want = parsePlatform(opts.platform ?? "");

    let top = await repo.manifest(ref.digest ?? ref.tag!, display);
    const manifestDigest = top.digest;
    let doc = parseJson<ImageManifest & ImageIndex>(top.body, "manifest");
    const fromIndex = isIndex(top.mediaType, doc);
    if (fromIndex) {
      const pick = selectManifest(doc as ImageIndex, want);
      top = await repo.manifest(pick.digest, display);
      doc = parseJson<ImageManifest & ImageIndex>(top.body, "manifest");
    }
    const manifest = doc as ImageManifest;
    if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new ImageError("invalid_argument", `unsupported manifest format for ${display} (${top.mediaType})`);

    emit({ id: ref.tag ?? ref.digest, status: `Pulling from ${familiarRepository(repository(ref))}` });

    const configBytes = this.store.content.has(manifest.config.digest) ? this.store.content.read(manifest.config.digest) : await this.fetchSmallBlob(repo, manifest.config);
    const config = parseJson<ImageConfig>(configBytes, "image config");
    if (opts.platform && !fromIndex && !configMatches(config, want)) {
      throw new ImageError(
        "not_found",
        `image with reference ${display} was found but does not match the specified platform: wanted ${formatPlatform(want)}, actual: ${config.os}/${config.architecture}${config.variant ? `/${config.variant}` : ""}`,
      );
    }
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length)
      throw new ImageError("invalid_argument", `image config for ${display} lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`);

    const release = this.store.lease([manifest.config.digest, ...diffIds, ...manifest.layers.map((l) => l.digest)]);
    try {
      const existing = this.store.db.getImage(manifest.config.digest);
      const upToDate = existing !== undefined && this.store.complete(existing) && (!ref.tag || this.store.db.tagTarget(formatReference(ref)) === existing.id);
      const layers: LayerRow[] = new Array(diffIds.length);
      const todo: number[] = [];
      manifest.layers.forEach((l, i) => {
        const have = this.store.db.getLayer(diffIds[i]!);
        if (have && this.store.snapshots.hasLayer(diffIds[i]!)) {
          layers[i] = have;
          if (!upToDate) emit({ id: shortId(l.digest), status: "Already exists" });
        } else {
          todo.push(i);
          emit({ id: shortId(l.digest), status: "Pulling fs layer" });
        }
      });
      for (const i of todo.slice(MAX_CONCURRENT_DOWNLOADS)) emit({ id: shortId(manifest.layers[i]!.digest), status: "Waiting" });
      await withConcurrency(todo, MAX_CONCURRENT_DOWNLOADS, async (i) => {
        layers[i] = await this.layer(repo, manifest.layers[i]!, diffIds[i]!, emit);
      });
      const img = this.store.record({ config: configBytes, configDigest: manifest.config.digest, layers });
      // Keep the platform manifest verbatim, so a push can reproduce its digest.
      this.store.content.put(top.body, top.digest);
      this.store.db.putManifest(top.digest, img.id, top.mediaType);
      if (ref.tag) this.store.db.setTag(formatReference(ref), img.id);
      this.store.db.setDigest(`${repository(ref)}@${manifestDigest}`, img.id, manifestDigest);
      emit({ status: `Digest: ${manifestDigest}` });
      if (finalStatus) emit({ status: upToDate ? `Status: Image is up to date for ${display}` : `Status: Downloaded newer image for ${display}` });
      return img.id;
    } finally {
      release();
    }
  }

  private async fetchSmallBlob(repo: ReturnType<typeof openRepo>, desc: Descriptor): Promise<Uint8Array> {
    const res = await repo.blob(desc.digest);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (digestOf(bytes) !== desc.digest) throw new ImageError("invalid_argument", `digest mismatch for ${desc.digest}: the registry sent different content`);
    this.store.content.put(bytes, desc.digest);
    return bytes;
  }

  private layer(repo: ReturnType<typeof openRepo>, desc: Descriptor, diffId: string, emit: Emit): Promise<LayerRow> {
    const running = this.inflight.get(diffId);
    const id = shortId(desc.digest);
    if (running) {
      return running.then((row) => {
        emit({ id, status: "Pull complete" });
        return row;
      });
    }
    const p = this.download(repo, desc, diffId, emit).finally(() => this.inflight.delete(diffId));
    this.inflight.set(diffId, p);
    return p;
  }

  private async download(repo: ReturnType<typeof openRepo>, desc: Descriptor, diffId: string, emit: Emit): Promise<LayerRow> {
    const id = shortId(desc.digest);
    const compression = layerCompression(desc.mediaType);
    const haveBlob = this.store.content.has(desc.digest);
    let body: ReadableStream<Uint8Array>;
    let resume: { writer: BlobWriter; bytes: number; path: string } | undefined;
    if (haveBlob) {
      body = Bun.file(this.store.content.path(desc.digest)).stream();
    } else {
      // Resume what an earlier broken download of this blob left, if the registry can.
      let partial = this.store.content.resumableWriter(desc.digest);
      const res = await repo.blob(desc.digest, partial.resumeBytes).catch((err) => {
        // A refused range request must not poison the next attempt.
        if (partial.resumeBytes > 0) partial.writer.abort();
        else partial.writer.keep();
        throw err;
      });
      if (partial.resumeBytes > 0 && res.status !== 206) {
        // The registry sent the whole blob: start over.
        partial.writer.abort();
        partial = this.store.content.resumableWriter(desc.digest);
      }
      if (partial.resumeBytes > 0) emit({ id, status: `Resuming from ${partial.resumeBytes} bytes` });
      resume = { writer: partial.writer, bytes: partial.resumeBytes, path: partial.partialPath };
      body = res.body ?? new Response(new Uint8Array()).body!;
    }
    const progress = progressThrottle(emit, id, "Downloading", desc.size);
    // On the main thread: measured faster than one worker per layer on this 2-core class
    // of machine (worker start-up and module loading cost more than they parallelize).
    const result = await ingestLayer({
      body,
      digest: desc.digest,
      size: desc.size,
      compression,
      expectedDiffId: diffId,
      store: this.store.content,
      snapshots: this.store.snapshots,
      writeBlob: !haveBlob,
      resume,
      onDownloaded: haveBlob ? undefined : progress,
    });
    emit({ id, status: "Verifying Checksum" });
    emit({ id, status: "Download complete" });
    emit({ id, status: "Extracting", current: desc.size, total: desc.size });
    const row: LayerRow = { diffId: result.diffId, size: result.size, blobDigest: desc.digest, mediaType: desc.mediaType, blobSize: desc.size };
    this.store.db.putLayer(row);
    emit({ id, status: "Pull complete" });
    return row;
  }
}
