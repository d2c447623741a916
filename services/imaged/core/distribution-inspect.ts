/**
 * GET /distribution/{name}/json: what a registry serves for a reference, without
 * pulling it. One manifest request, plus the (small) image config of a single-platform
 * manifest to learn its platform, as Docker does; nothing is stored.
 */
import { openRepo, type Credentials } from "../platform/registry-client.ts";
import { ImageError } from "./errors.ts";
import { digestOf, isIndex, parseJson, type ImageConfig, type ImageIndex, type ImageManifest } from "./manifest.ts";
import { familiar, formatReference, parseReference, withDefaultTag } from "./reference.ts";
import type { RegistryConfig } from "./registry-config.ts";

export interface DistributionPlatform {
  os: string;
  architecture: string;
  variant: string;
  osVersion: string;
  osFeatures: string[];
}

export interface DistributionInfo {
  mediaType: string;
  digest: string;
  size: bigint;
  platforms: DistributionPlatform[];
}

/** A platform object from an index entry or an image config (OCI field names). */
function platformOf(p: Record<string, unknown>): DistributionPlatform {
  const str = (k: string) => (typeof p[k] === "string" ? (p[k] as string) : "");
  const features = p["os.features"];
  return { os: str("os"), architecture: str("architecture"), variant: str("variant"), osVersion: str("os.version"), osFeatures: Array.isArray(features) ? features.map(String) : [] };
}

export async function distributionInspect(cfg: RegistryConfig, reference: string, creds: Credentials | undefined): Promise<DistributionInfo> {
  // A full image ID names nothing in a registry (dockerd's wording).
  if (/^(sha256:)?[a-f0-9]{64}$/.test(reference)) throw new ImageError("invalid_argument", "no manifest found for full image ID");
  const ref = withDefaultTag(parseReference(reference));
  const display = familiar(formatReference(ref));
  const repo = openRepo(cfg, ref.domain, ref.path, creds, "pull");
  const top = await repo.manifest(ref.digest ?? ref.tag!, display);
  const doc = parseJson<ImageManifest & ImageIndex>(top.body, "manifest");
  const info = { mediaType: top.mediaType, digest: top.digest, size: BigInt(top.body.length) };
  if (isIndex(top.mediaType, doc)) {
    const entries = Array.isArray(doc.manifests) ? doc.manifests : [];
    return { ...info, platforms: entries.filter((m) => m.platform).map((m) => platformOf(m.platform as unknown as Record<string, unknown>)) };
  }
  if (!doc.config?.digest) throw new ImageError("invalid_argument", `unsupported manifest format for ${display} (${top.mediaType})`);
  const res = await repo.blob(doc.config.digest);
  const configBytes = new Uint8Array(await res.arrayBuffer());
  if (digestOf(configBytes) !== doc.config.digest) throw new ImageError("invalid_argument", `digest mismatch for ${doc.config.digest}: the registry sent different content`);
  const config = parseJson<ImageConfig>(configBytes, "image config");
  return { ...info, platforms: [platformOf(config)] };
}
