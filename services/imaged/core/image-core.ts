/**
 * imaged's domain facade: the operations ImageService exposes, composed from the
 * store, puller, pusher, rootfs manager and archive code.
 */
import { ImageError } from "./errors.ts";
import { filterImages, type FilterArg } from "./filters.ts";
import type { ImageStore } from "./image-store.ts";
import { createdUnix, type ImageConfig } from "./manifest.ts";
import type { Puller } from "./puller.ts";
import type { Pusher } from "./pusher.ts";
import { familiar, formatReference, parseReference, repository, withDefaultTag, looksLikeId } from "./reference.ts";
import type { RootfsManager } from "./rootfs.ts";
import { openRepo, type Credentials } from "../platform/registry-client.ts";
import type { RegistryConfig } from "./registry-config.ts";
import { saveArchive } from "./archive-save.ts";
import { loadArchive } from "./archive-load.ts";
import { importTarball, type ImportOptions } from "./import-tarball.ts";
import type { Emit } from "./progress.ts";
import { commitContainer, type CommitOptions } from "./commit.ts";
import { distributionInspect } from "./distribution-inspect.ts";
import { searchRegistry } from "./search.ts";

export interface RemovedItem {
  untagged: string;
  deleted: string;
}

export class ImageCore {
  constructor(
    readonly store: ImageStore,
    readonly puller: Puller,
    readonly pusher: Pusher,
    readonly rootfs: RootfsManager,
    private readonly registryConfig: () => RegistryConfig,
  ) {}

  /** docker images; without `all`, untagged images that others were built from are hidden, as in Docker. */
  list(filters: FilterArg[], all = true) {
    const rows = filterImages(this.store, filters).filter(({ row, tags }) => all || tags.length > 0 || !this.store.db.hasChildren(row.id));
    // Layers shared with another image are not unique to either.
    const layerUse = new Map<string, number>();
    for (const img of this.store.db.allImages()) for (const d of new Set(img.diffIds)) layerUse.set(d, (layerUse.get(d) ?? 0) + 1);
    const items = rows
      .map(({ row, tags, digests }) => {
        const cfg = this.store.config(row);
        let unique = 0;
        for (const d of new Set(row.diffIds)) if (layerUse.get(d) === 1) unique += this.store.db.getLayer(d)?.size ?? 0;
        return {
          id: row.id,
          name: tags[0] ?? "<none>:<none>",
          repoTags: tags,
          repoDigests: digests,
          createdUnix: BigInt(row.created),
          size: BigInt(row.size),
          labels: (cfg.config?.Labels ?? {}) as Record<string, string>,
          containers: this.store.db.containerCount(row.id),
          uniqueSize: BigInt(unique),
          added: row.added,
        };
      })
      .sort((a, b) => Number(b.createdUnix - a.createdUnix) || b.added - a.added);
    return { items, storeSize: BigInt(this.store.storeSize()) };
  }

  inspect(reference: string) {
    const img = this.store.resolve(reference);
    const tags = this.store.db.tagsOf(img.id);
    return {
      id: img.id,
      repoTags: tags.map((t) => familiar(t.name)),
      repoDigests: this.store.repoDigests(img.id),
      configJson: img.config,
      size: BigInt(img.size),
      createdUnix: BigInt(img.created),
      layerDirs: img.diffIds.map((d) => this.store.snapshots.layerPath(d)),
      lastTagTimeUnixNano: BigInt(Math.max(0, ...tags.map((t) => t.updated))),
      parent: this.store.db.parentOf(img.id) ?? "",
    };
  }

  history(reference: string) {
    const img = this.store.resolve(reference);
    const cfg = this.store.config(img);
    const diffIds = [...img.diffIds];
    const entries = (cfg.history?.length ? cfg.history : diffIds.map(() => ({}) as NonNullable<ImageConfig["history"]>[number])).map((h) => {
      const layer = h.empty_layer ? undefined : diffIds.shift();
      return {
        id: "<missing>",
        createdUnix: BigInt(h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : createdUnix(cfg)),
        createdBy: h.created_by ?? "",
        tags: [] as string[],
        size: BigInt(layer ? (this.store.db.getLayer(layer)?.size ?? 0) : 0),
        comment: h.comment ?? "",
      };
    });
    // Each image of the parent chain (build steps, commits) names the entry that made it.
    const seen = new Set<string>();
    for (let cur: typeof img | undefined = img; cur && !seen.has(cur.id); ) {
      seen.add(cur.id);
      const n = this.store.config(cur).history?.length ?? cur.diffIds.length;
      const entry = entries[n - 1];
      if (n > 0 && entry && entry.id === "<missing>") {
        entry.id = cur.id;
        entry.tags = this.store.repoTags(cur.id);
      }
      const parentId = this.store.db.parentOf(cur.id);
      cur = parentId ? this.store.db.getImage(parentId) : undefined;
    }
    entries.reverse();
    if (entries[0]) {
      entries[0].id = img.id;
      entries[0].tags = this.store.repoTags(img.id);
    }
    return entries;
  }

  /** docker rmi: untag, and delete the image once no reference is left. */
  remove(reference: string, force: boolean, noPrune: boolean): RemovedItem[] {
    const img = this.store.resolve(reference);
    const out: RemovedItem[] = [];
    const untag = (name: string) => out.push({ untagged: familiar(name), deleted: "" });
    const tags = this.store.db.tagsOf(img.id).map((t) => t.name);
    const digests = this.store.db.digestsOf(img.id);
    const byId = looksLikeId(reference) && !this.store.db.tagTarget(formatReference(withDefaultTag(parseReference(reference.replace(/^sha256:/, "")))));
    const users = this.store.db.containersUsing(img.id);

    if (!byId) {
      const ref = withDefaultTag(parseReference(reference));
      const name = ref.digest ? `${repository(ref)}@${ref.digest}` : formatReference(ref);
      const otherRefs = tags.filter((t) => t !== name).length;
      if (otherRefs > 0) {
        // Other tags keep the image: only this reference goes.
        if (ref.digest) this.store.db.deleteDigest(name);
        else this.store.db.deleteTag(name);
        untag(name);
        return out;
      }
      if (users.length > 0 && !force) {
        throw new ImageError(
          "conflict",
          `conflict: unable to remove repository reference "${reference}" (must force) - container ${users[0]!.slice(0, 12)} is using its referenced image ${img.id.slice(7, 19)}`,
        );
      }
    } else {
      if (users.length > 0 && !force)
        throw new ImageError("conflict", `conflict: unable to delete ${img.id.slice(7, 19)} (must be forced) - image is being used by container ${users[0]!.slice(0, 12)}`);
      if (tags.length > 1 && !force) throw new ImageError("conflict", `conflict: unable to delete ${img.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`);
    }
    for (const t of tags) {
      this.store.db.deleteTag(t);
      untag(t);
    }
    for (const d of digests) {
      this.store.db.deleteDigest(d);
      untag(d);
    }
    // A container still uses the layers: the image stays (untagged) until it is released.
    if (users.length > 0) return out;
    this.store.db.deleteImage(img.id);
    out.push({ untagged: "", deleted: img.id });
    if (!noPrune) for (const layer of this.store.collectGarbage().layers) out.push({ untagged: "", deleted: layer });
    return out;
  }

  /** docker image prune: dangling images (or all unused with dangling=false), then GC. */
  prune(filters: FilterArg[]) {
    const danglingOnly = !filters.some((f) => f.key === "dangling" && f.values.some((v) => v === "false" || v === "0"));
    const rest = filters.filter((f) => f.key !== "dangling");
    const candidates = filterImages(this.store, rest, new Set(["label", "label!", "until"]));
    const items: RemovedItem[] = [];
    for (const { row } of candidates) {
      if (this.store.db.containerCount(row.id) > 0) continue;
      const tags = this.store.db.tagsOf(row.id);
      if (danglingOnly && tags.length > 0) continue;
      // An intermediate image of a build is not dangling while something was built from it.
      if (danglingOnly && this.store.db.hasChildren(row.id)) continue;
      for (const t of tags) {
        this.store.db.deleteTag(t.name);
        items.push({ untagged: familiar(t.name), deleted: "" });
      }
      for (const d of this.store.db.digestsOf(row.id)) {
        this.store.db.deleteDigest(d);
        items.push({ untagged: familiar(d), deleted: "" });
      }
      this.store.db.deleteImage(row.id);
      items.push({ untagged: "", deleted: row.id });
    }
    const gc = this.store.collectGarbage();
    for (const l of gc.layers) items.push({ untagged: "", deleted: l });
    return { items, spaceReclaimed: BigInt(gc.reclaimed) };
  }

  save(references: string[]): AsyncGenerator<Uint8Array> {
    return saveArchive(this.store, references);
  }

  async load(body: ReadableStream<Uint8Array>, emit: Emit): Promise<void> {
    await loadArchive(this.store, body, emit);
  }

  async importTarball(body: ReadableStream<Uint8Array>, opts: ImportOptions, emit: Emit): Promise<void> {
    await importTarball(this.store, body, opts, emit);
  }

  commit(o: CommitOptions): Promise<string> {
    // A layer from a directory inherits its parent's directory attributes: read them
    // through the parent's mounted layers.
    const parent = o.layerDir && o.parentImage ? this.store.resolve(o.parentImage) : undefined;
    if (parent) return this.rootfs.withLayersMounted(parent.diffIds, () => commitContainer(this.store, o));
    return commitContainer(this.store, o);
  }

  distributionInspect(reference: string, creds: Credentials | undefined) {
    return distributionInspect(this.registryConfig(), reference, creds);
  }

  search(term: string, limit: number, creds: Credentials | undefined) {
    return searchRegistry(this.registryConfig(), term, limit, creds);
  }

  async login(creds: Credentials | undefined, serverAddress: string) {
    const host = serverAddress.replace(/^https?:\/\//, "").replace(/\/.*$/, "") || "docker.io";
    const domain = host === "index.docker.io" || host === "registry-1.docker.io" ? "docker.io" : host;
    const repo = openRepo(this.registryConfig(), domain, "", creds, "pull");
    await repo.ping();
    return { status: "Login Succeeded", identityToken: "" };
  }
}
