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
  config?: {
    Cmd?: string[];
    Entrypoint?: string[];
    Env?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string>;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    User?: string;
    Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  };
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

export interface RawTarEntry {
  name: string;
  /** "0" file, "1" hard link, "2" symlink, "3" char dev, "4" block dev, "5" dir, "6" fifo. */
  type?: string;
  data?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** PAX records written in an extended header before the entry (e.g. SCHILY.xattr.user.x). */
  pax?: Record<string, string>;
}

function tarHeader(e: { name: string; type: string; size: number; linkname?: string; mode: number; uid: number; gid: number; mtime: number; devmajor?: number; devminor?: number }): Uint8Array {
  const h = new Uint8Array(512);
  const enc = new TextEncoder();
  const put = (off: number, len: number, s: string) => h.set(enc.encode(s).subarray(0, len), off);
  const oct = (off: number, len: number, n: number) => put(off, len, `${n.toString(8).padStart(len - 1, "0")}\0`);
  put(0, 100, e.name);
  oct(100, 8, e.mode);
  oct(108, 8, e.uid);
  oct(116, 8, e.gid);
  oct(124, 12, e.size);
  oct(136, 12, e.mtime);
  put(148, 8, "        ");
  put(156, 1, e.type);
  put(157, 100, e.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  oct(329, 8, e.devmajor ?? 0);
  oct(337, 8, e.devminor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** A hand-made tar (for entries GNU tar will not write: escapes, whiteouts of anything, devices). */
export function rawTar(entries: RawTarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  const pad = (n: number) => new Uint8Array((512 - (n % 512)) % 512);
  for (const e of entries) {
    if (e.pax) {
      let body = "";
      for (const [k, v] of Object.entries(e.pax)) {
        const rec = ` ${k}=${v}\n`;
        let len = rec.length + 1;
        while (`${len}${rec}`.length !== len) len++;
        body += `${len}${rec}`;
      }
      const data = enc.encode(body);
      parts.push(tarHeader({ name: "PaxHeader", type: "x", size: data.length, mode: 0o644, uid: 0, gid: 0, mtime: 0 }), data, pad(data.length));
    }
    const data = typeof e.data === "string" ? enc.encode(e.data) : (e.data ?? new Uint8Array());
    const type = e.type ?? "0";
    parts.push(
      tarHeader({
        name: e.name,
        type,
        size: type === "0" ? data.length : 0,
        linkname: e.linkname,
        mode: e.mode ?? (type === "5" ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtime: e.mtime ?? 1_700_000_000,
        devmajor: e.devmajor,
        devminor: e.devminor,
      }),
    );
    if (type === "0") parts.push(data, pad(data.length));
  }
  parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Pushes one image per platform and an OCI index (or Docker manifest list) over them as `repo:tag`. */
export async function pushIndex(
  reg: TestRegistry,
  repo: string,
  tag: string,
  entries: { platform: { os: string; architecture: string; variant?: string }; spec: ImageSpec }[],
  format: "oci" | "docker" = "oci",
): Promise<{ reference: string; indexDigest: string; images: PushedImage[] }> {
  const images: PushedImage[] = [];
  for (const e of entries) images.push(await pushImage(reg, repo, `${tag}-${e.platform.architecture}${e.platform.variant ?? ""}`, { ...e.spec, architecture: e.platform.architecture, format }));
  const mediaType = format === "oci" ? "application/vnd.oci.image.index.v1+json" : "application/vnd.docker.distribution.manifest.list.v2+json";
  const body = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map((img, i) => ({
        mediaType: format === "oci" ? "application/vnd.oci.image.manifest.v1+json" : "application/vnd.docker.distribution.manifest.v2+json",
        digest: img.manifestDigest,
        size: img.manifest.length,
        platform: entries[i]!.platform,
      })),
    }),
  );
  const indexDigest = await pushManifest(reg, repo, tag, mediaType, body);
  return { reference: `${reg.host}/${repo}:${tag}`, indexDigest, images };
}
