/**
 * Manifest, index and image-config documents (Docker schema 2 and OCI), and platform
 * selection from an index, as Docker does it (os/arch, then variant).
 */
import { ImageError } from "./errors.ts";

export const MT = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: Record<string, unknown> & { Labels?: Record<string, string> | null };
  rootfs?: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; empty_layer?: boolean; comment?: string; author?: string }[];
  comment?: string;
  docker_version?: string;
  [k: string]: unknown;
}

export type Compression = "gzip" | "zstd" | "none";

export function isIndex(mediaType: string, doc: { manifests?: unknown }): boolean {
  return mediaType === MT.ociIndex || mediaType === MT.dockerList || (!!doc.manifests && !("config" in doc));
}

export function layerCompression(mediaType: string): Compression {
  if (mediaType.endsWith("+zstd") || mediaType.endsWith(".zstd")) return "zstd";
  if (mediaType.endsWith("gzip") || mediaType === "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") return "gzip";
  if (mediaType === MT.ociLayer || mediaType === MT.dockerLayer) return "none";
  throw new ImageError("invalid_argument", `unsupported layer media type ${mediaType}`);
}

export function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch {
    throw new ImageError("invalid_argument", `invalid ${what}: not JSON`);
  }
}

const GOARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

export function hostPlatform(): Platform {
  return { os: "linux", architecture: GOARCH[process.arch] ?? process.arch };
}

/** Parses "os[/arch[/variant]]"; empty means the host platform. */
export function parsePlatform(s: string): Platform {
  if (!s) return hostPlatform();
  const [os, arch, variant] = s.toLowerCase().split("/");
  if (!os) throw new ImageError("invalid_argument", `invalid platform ${JSON.stringify(s)}`);
  const host = hostPlatform();
  const architecture = arch === "x86_64" || arch === "x86-64" ? "amd64" : arch === "aarch64" ? "arm64" : (arch ?? host.architecture);
  return { os, architecture, variant: variant || (architecture === "arm64" && arch ? undefined : undefined) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** Picks the manifest for `want` from an index (arm64 without variant matches v8). */
export function selectManifest(index: ImageIndex, want: Platform): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture);
  const exact = candidates.find((m) => (m.platform!.variant ?? "") === (want.variant ?? ""));
  const loose = want.variant ? undefined : (candidates.find((m) => m.platform!.variant === "v8" || !m.platform!.variant) ?? candidates[0]);
  const pick = exact ?? loose;
  if (!pick) throw new ImageError("not_found", `no matching manifest for ${formatPlatform(want)} in the manifest list entries`);
  return pick;
}

/** Checks that an image config matches the platform asked for (single-platform images). */
export function configMatches(cfg: ImageConfig, want: Platform): boolean {
  return (cfg.os ?? "linux") === want.os && (cfg.architecture ?? "") === want.architecture && (!want.variant || !cfg.variant || cfg.variant === want.variant);
}

export function sha256Hex(data: Uint8Array | string): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

export function digestOf(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

export function createdUnix(cfg: ImageConfig): number {
  const t = cfg.created ? Date.parse(cfg.created) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}
