/**
 * Builds test images from Debian's busybox-static (no Docker Hub here) and pushes
 * them to a test registry over the OCI distribution API.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestRegistry } from "./registry.ts";

export const BUSYBOX = "/bin/busybox";

/** A busybox-static root filesystem: /bin/busybox plus a symlink for every applet. */
export function buildBusyboxRootfs(dir: string): void {
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp", "var/tmp"]) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, "tmp"), 0o1777);
  copyFileSync(BUSYBOX, join(dir, "bin", "busybox"));
  chmodSync(join(dir, "bin", "busybox"), 0o755);
  const applets = Bun.spawnSync([BUSYBOX, "--list-full"]).stdout.toString().trim().split("\n");
  for (const applet of applets) {
    if (!applet || applet === "bin/busybox") continue;
    const depth = applet.split("/").length - 1;
    try {
      symlinkSync(`${"../".repeat(depth)}bin/busybox`, join(dir, applet));
    } catch {}
  }
  writeFileSync(join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(join(dir, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n");
}

/** An uncompressed tar of a directory's contents, owned by root, as a layer. */
export function tarDirectory(dir: string): Uint8Array {
  const p = Bun.spawnSync(["tar", "--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@0", "-C", dir, "-cf", "-", "."]);
  if (p.exitCode !== 0) throw new Error(`tar failed: ${p.stderr}`);
  return p.stdout;
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(data).digest("hex")}`;
}

export interface ImageSpec {
  /** Uncompressed layer tars, lowest first. */
  layers: Uint8Array[];
  config?: { Cmd?: string[]; Entrypoint?: string[]; Env?: string[]; WorkingDir?: string; Labels?: Record<string, string>; ExposedPorts?: Record<string, object>; Volumes?: Record<string, object>; User?: string };
  architecture?: string;
  /** "docker" (schema 2) or "oci" manifest and layer media types. */
  format?: "docker" | "oci";
  compression?: "gzip" | "none" | "zstd";
  /** RFC 3339 creation time of the image (default 2026-01-01). */
  created?: string;
  /** Extra history entries without layers (e.g. ENV steps), appended after the layers. */
  emptyHistory?: string[];
}

export interface PushedImage {
  reference: string;
  manifestDigest: string;
  configDigest: string;
  manifest: Uint8Array;
}

async function authHeaders(reg: TestRegistry): Promise<Record<string, string>> {
  return reg.auth ? { Authorization: `Basic ${btoa(`${reg.auth.username}:${reg.auth.password}`)}` } : {};
}

export async function pushBlob(reg: TestRegistry, repo: string, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const headers = await authHeaders(reg);
  const head = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`, { method: "HEAD", headers });
  if (head.ok) return digest;
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
  if (start.status !== 202) throw new Error(`blob upload start: ${start.status} ${await start.text()}`);
  const loc = new URL(start.headers.get("location")!, reg.url);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", headers: { ...headers, "Content-Type": "application/octet-stream" }, body: data });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  return digest;
}

export async function pushManifest(reg: TestRegistry, repo: string, tag: string, mediaType: string, body: Uint8Array): Promise<string> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { method: "PUT", headers: { ...(await authHeaders(reg)), "Content-Type": mediaType }, body });
  if (res.status !== 201) throw new Error(`manifest push: ${res.status} ${await res.text()}`);
  return sha256(body);
}

/** Pushes `repo:tag` built from `spec`; returns the manifest digest and reference. */
export async function pushImage(reg: TestRegistry, repo: string, tag: string, spec: ImageSpec): Promise<PushedImage> {
  const oci = spec.format === "oci";
  const compression = spec.compression ?? "gzip";
  const gzip = compression === "gzip";
  if (compression === "zstd" && !oci) throw new Error("zstd layers need the OCI format");
  const layerType =
    compression === "zstd"
      ? "application/vnd.oci.image.layer.v1.tar+zstd"
      : oci
        ? gzip
          ? "application/vnd.oci.image.layer.v1.tar+gzip"
          : "application/vnd.oci.image.layer.v1.tar"
        : gzip
          ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
          : "application/vnd.docker.image.rootfs.diff.tar";
  const layers = [];
  for (const tar of spec.layers) {
    const blob = compression === "zstd" ? Bun.zstdCompressSync(tar as Uint8Array<ArrayBuffer>) : gzip ? Bun.gzipSync(tar as Uint8Array<ArrayBuffer>) : tar;
    layers.push({ mediaType: layerType, size: blob.length, digest: await pushBlob(reg, repo, blob) });
  }
  const config = {
    architecture: spec.architecture ?? "amd64",
    os: "linux",
    created: spec.created ?? "2026-01-01T00:00:00Z",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"], ...spec.config },
    rootfs: { type: "layers", diff_ids: spec.layers.map((l) => sha256(l)) },
    history: [
      ...spec.layers.map((_, i) => ({ created: spec.created ?? "2026-01-01T00:00:00Z", created_by: `arcbox-test layer ${i}` })),
      ...(spec.emptyHistory ?? []).map((step) => ({ created: spec.created ?? "2026-01-01T00:00:00Z", created_by: step, empty_layer: true })),
    ],
  };
  const configBytes = new TextEncoder().encode(JSON.stringify(config));
  const configDigest = await pushBlob(reg, repo, configBytes);
  const mediaType = oci ? "application/vnd.oci.image.manifest.v1+json" : "application/vnd.docker.distribution.manifest.v2+json";
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: oci ? "application/vnd.oci.image.config.v1+json" : "application/vnd.docker.container.image.v1+json", size: configBytes.length, digest: configDigest },
      layers,
    }),
  );
  const manifestDigest = await pushManifest(reg, repo, tag, mediaType, manifest);
  return { reference: `${reg.host}/${repo}:${tag}`, manifestDigest, configDigest, manifest };
}

/** Pushes the standard single-layer busybox image as `<registry>/<repo>:<tag>`. */
export async function pushBusybox(reg: TestRegistry, repo = "busybox", tag = "latest", spec: Partial<ImageSpec> = {}): Promise<PushedImage> {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-rootfs-"));
  try {
    buildBusyboxRootfs(dir);
    return await pushImage(reg, repo, tag, { layers: [tarDirectory(dir)], ...spec });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type FileSpec = string | { symlink: string } | { dir: true; mode?: number } | { content: string; mode?: number; uid?: number; gid?: number };

/** An uncompressed layer tar holding exactly `files` (path -> content or kind), built with GNU tar. */
export function tarFiles(files: Record<string, FileSpec>): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-layer-"));
  try {
    for (const [path, spec] of Object.entries(files)) {
      const abs = join(dir, path);
      mkdirSync(join(abs, ".."), { recursive: true });
      if (typeof spec === "string") writeFileSync(abs, spec);
      else if ("symlink" in spec) symlinkSync(spec.symlink, abs);
      else if ("dir" in spec) {
        mkdirSync(abs, { recursive: true });
        if (spec.mode !== undefined) chmodSync(abs, spec.mode);
      } else {
        writeFileSync(abs, spec.content);
        if (spec.mode !== undefined) chmodSync(abs, spec.mode);
        if (spec.uid !== undefined) chownSync(abs, spec.uid, spec.gid ?? spec.uid);
      }
    }
    const p = Bun.spawnSync(["tar", "--numeric-owner", "--sort=name", "--mtime=@1700000000", "--xattrs", "-C", dir, "-cf", "-", "."]);
    if (p.exitCode !== 0) throw new Error(`tar failed: ${p.stderr}`);
    return p.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
