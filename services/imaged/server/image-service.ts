/** Connect handlers of ImageService: translation between protobuf and the core only. */
import type { ConnectRouter } from "@connectrpc/connect";
import { toConnectError } from "../../../lib/rpc/connect-errors.ts";
import { create } from "@bufbuild/protobuf";
import { ImageService, ProgressSchema, type Progress, type RegistryAuth } from "../../../proto/gen/arcbox/images/v1/images_pb.ts";
import type { Credentials } from "../platform/registry-client.ts";
import type { ImageCore } from "../core/image-core.ts";
import type { ProgressEvent } from "../core/progress.ts";
import type { RegistryConfig } from "../core/registry-config.ts";
import { streamEvents } from "./event-stream.ts";
import { layerImageSupport } from "../platform/layer-image.ts";

/** For `docker info` DriverStatus: how layers are stored here. */
function layerFormat(): string {
  const s = layerImageSupport();
  return s.ok ? "squashfs images (loop-mounted)" : `unpacked directories (${s.reason})`;
}

const SAVE_CHUNK = 1 << 20;

export function toCreds(a: RegistryAuth | undefined): Credentials | undefined {
  if (!a) return undefined;
  if (!a.username && !a.password && !a.identityToken && !a.registryToken) return undefined;
  return { username: a.username, password: a.password, identityToken: a.identityToken, registryToken: a.registryToken };
}

export function toProgress(e: ProgressEvent): Progress {
  return create(ProgressSchema, {
    id: e.id ?? "",
    status: e.status ?? "",
    current: BigInt(e.current ?? 0),
    total: BigInt(e.total ?? 0),
    error: e.error ?? "",
    auxJson: e.aux === undefined ? "" : JSON.stringify(e.aux),
  });
}

export function imageServiceRoutes(core: ImageCore, streamSocket: string, registryConfig: () => RegistryConfig) {
  return (router: ConnectRouter) =>
    router.service(ImageService, {
      list: (req) =>
        core.list(
          req.filters.map((f) => ({ key: f.key, values: f.values })),
          req.all,
        ),
      inspect: (req) => core.inspect(req.reference),
      prepareRootfs: (req) => core.rootfs.prepare(req.image, req.containerId),
      releaseRootfs: async (req) => {
        await core.rootfs.release(req.containerId);
        return {};
      },
      pull: (req, ctx) =>
        streamEvents(
          ctx.signal,
          (emit) => {
            const opts = { reference: req.reference, platform: req.platform, creds: toCreds(req.auth) };
            return req.allTags ? core.puller.pullAllTags(opts, emit) : core.puller.pull(opts, emit);
          },
          (e) => ({ progress: toProgress(e) }),
        ),
      push: (req, ctx) =>
        streamEvents(
          ctx.signal,
          (emit) => core.pusher.push({ reference: req.reference, creds: toCreds(req.auth) }, emit),
          (e) => ({ progress: toProgress(e) }),
        ),
      login: async (req) => core.login(toCreds(req.auth), req.auth?.serverAddress ?? ""),
      search: async (req) => ({ results: await core.search(req.term, req.limit, toCreds(req.auth)) }),
      tag: (req) => {
        core.store.tag(req.source, req.target);
        return {};
      },
      remove: (req) => ({ items: core.remove(req.reference, req.force, req.noPrune) }),
      history: (req) => ({ entries: core.history(req.reference) }),
      prune: (req) => core.prune(req.filters.map((f) => ({ key: f.key, values: f.values }))),
      save: async function* (req) {
        try {
          // Coalesce tar headers and small reads into fewer, larger messages.
          let pending: Uint8Array[] = [];
          let size = 0;
          for await (const chunk of core.save(req.references)) {
            pending.push(chunk);
            size += chunk.length;
            if (size >= SAVE_CHUNK) {
              yield { data: Buffer.concat(pending) };
              pending = [];
              size = 0;
            }
          }
          if (size > 0) yield { data: Buffer.concat(pending) };
        } catch (err) {
          throw toConnectError(err);
        }
      },
      streamEndpoint: () => ({ socketPath: streamSocket }),
      commit: async (req) => ({
        id: await core.commit({
          containerId: req.containerId,
          reference: req.reference,
          comment: req.comment,
          author: req.author,
          configJson: req.configJson,
          changes: req.changes,
          createdBy: req.createdBy,
          parentImage: req.parentImage,
          layerDir: req.layerDir,
          layerDiffId: req.layerDiffId,
          layerTar: req.layerTar,
        }),
      }),
      registryInfo: () => ({ mirrors: registryConfig().mirrors, insecureRegistries: registryConfig().insecure, layerFormat: layerFormat() }),
      distributionInspect: (req) => core.distributionInspect(req.reference, toCreds(req.auth)),
    });
}
