/**
 * A client for the OCI distribution API (v2): endpoints (mirrors for Docker Hub,
 * HTTPS with an HTTP fallback for insecure registries), Bearer-token and Basic auth
 * negotiated from `WWW-Authenticate`, manifests, blob downloads and uploads.
 * Registry errors become ImageErrors with Docker's wording.
 */
import { ImageError } from "../core/errors.ts";
import { isInsecure, type RegistryConfig } from "../core/registry-config.ts";
import { DEFAULT_DOMAIN } from "../core/reference.ts";

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

export const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
];

interface Endpoint {
  /** e.g. "http://127.0.0.1:5000" */
  base: string;
  mirror: boolean;
}

/** Working scheme per host, learned once (an insecure registry that speaks plain HTTP). */
const schemeCache = new Map<string, string>();

interface RegistryErrorBody {
  errors?: { code?: string; message?: string }[];
}

async function describe(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as RegistryErrorBody;
    const e = body.errors?.[0];
    if (e?.code) return `${e.code.toLowerCase().replace(/_/g, " ")}: ${e.message ?? ""}`.trim();
  } catch {}
  return text.trim().slice(0, 200) || `${res.status} ${res.statusText}`;
}

export class RepoSession {
  private authorization?: string;
  private endpoint?: Endpoint;

  constructor(
    private readonly cfg: RegistryConfig,
    readonly domain: string,
    readonly path: string,
    private readonly creds: Credentials | undefined,
    private readonly actions: string,
  ) {}

  private endpoints(): Endpoint[] {
    if (this.domain === DEFAULT_DOMAIN) {
      return [...this.cfg.mirrors.map((m) => ({ base: m, mirror: true })), { base: "https://registry-1.docker.io", mirror: false }];
    }
    return [{ base: `${schemeCache.get(this.domain) ?? "https"}://${this.domain}`, mirror: false }];
  }

  /** Sends a request to the first endpoint that answers, handling auth challenges. */
  async request(pathAndQuery: string, init: RequestInit & { headers?: Record<string, string> } = {}, allowMirror = true): Promise<Response> {
    const eps = this.endpoint ? [this.endpoint] : this.endpoints().filter((e) => allowMirror || !e.mirror);
    let lastErr: unknown;
    for (const ep of eps) {
      try {
        const res = await this.send(ep, pathAndQuery, init);
        // A mirror that lacks the content falls through to the next endpoint.
        if (ep.mirror && res.status >= 400 && eps.length > 1 && ep !== eps[eps.length - 1]) {
          lastErr = new ImageError("not_found", await describe(res));
          continue;
        }
        this.endpoint = ep;
        return res;
      } catch (err) {
        lastErr = err;
      }
    }
    if (lastErr instanceof ImageError) throw lastErr;
    throw new ImageError("unavailable", `error pulling from ${this.domain}: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`, { cause: lastErr });
  }

  private async send(ep: Endpoint, pathAndQuery: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> {
    const go = async (base: string) => {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      if (this.authorization) headers.Authorization = this.authorization;
      return fetch(`${base}${pathAndQuery}`, { ...init, headers, tls: { rejectUnauthorized: !isInsecure(this.cfg, this.domain) } } as RequestInit);
    };
    let base = ep.base;
    let res: Response;
    try {
      res = await go(base);
    } catch (err) {
      // An insecure registry may speak plain HTTP: retry once and remember.
      if (!base.startsWith("https://") || !isInsecure(this.cfg, new URL(base).host)) throw err;
      base = `http://${base.slice("https://".length)}`;
      res = await go(base);
      ep.base = base;
      if (!ep.mirror) schemeCache.set(this.domain, "http");
    }
    if (res.status === 401 && !(init.body instanceof ReadableStream)) {
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      if (challenge && (await this.authenticate(challenge))) return go(base);
      return new Response(null, { status: 401, statusText: "Unauthorized" });
    }
    return res;
  }

  /** The token scope: the repository's, or the registry catalog's for a search. */
  private scope(): string | undefined {
    if (this.actions === "search") return "registry:catalog:search";
    return this.path ? `repository:${this.path}:${this.actions}` : undefined;
  }

  /** Answers a WWW-Authenticate challenge; returns true when we have something to send. */
  private async authenticate(challenge: string): Promise<boolean> {
    const scheme = challenge.split(" ", 1)[0]!.toLowerCase();
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    const c = this.creds;
    const basic = c?.username ? `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}` : undefined;
    if (c?.registryToken) {
      this.authorization = `Bearer ${c.registryToken}`;
      return true;
    }
    if (scheme === "basic") {
      if (!basic) return false;
      this.authorization = basic;
      return true;
    }
    if (scheme !== "bearer" || !params.realm) return false;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    const scope = this.scope();
    if (scope) url.searchParams.set("scope", scope);
    let res: Response;
    if (c?.identityToken) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: c.identityToken,
        service: params.service ?? "",
        scope: scope ?? "",
        client_id: "arcbox",
      });
      res = await fetch(url.origin + url.pathname, { method: "POST", body: form });
    } else {
      res = await fetch(url, { headers: basic ? { Authorization: basic } : {} });
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (res.status === 401) throw new ImageError("permission_denied", `unauthorized: incorrect username or password`);
      throw new ImageError("unavailable", `token server ${url.origin} answered ${res.status}`);
    }
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) return false;
    this.authorization = `Bearer ${token}`;
    return true;
  }

  private repoUrl(rest: string): string {
    return `/v2/${this.path}/${rest}`;
  }

  /** Fetches a manifest (or index) by tag or digest. */
  async manifest(ref: string, displayRef: string): Promise<{ mediaType: string; body: Uint8Array; digest: string }> {
    const res = await this.request(this.repoUrl(`manifests/${ref}`), { headers: { Accept: MANIFEST_TYPES.join(", ") } });
    if (!res.ok) throw await this.failure(res, `manifest for ${displayRef}`);
    const body = new Uint8Array(await res.arrayBuffer());
    const digest = `sha256:${new Bun.CryptoHasher("sha256").update(body).digest("hex")}`;
    if (ref.startsWith("sha256:") && ref !== digest) throw new ImageError("invalid_argument", `manifest verification failed for digest ${ref}`);
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim() || ((JSON.parse(new TextDecoder().decode(body)) as { mediaType?: string }).mediaType ?? "");
    return { mediaType, body, digest };
  }

  /** Every tag of the repository (following Link pagination). */
  async tags(): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = this.repoUrl("tags/list");
    while (next) {
      const res = await this.request(next);
      if (!res.ok) throw await this.failure(res, `tags of ${this.domain}/${this.path}`);
      const body = (await res.json()) as { tags?: string[] | null };
      out.push(...(body.tags ?? []));
      const link = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
      next = link ? new URL(link, "http://registry.invalid").pathname + new URL(link, "http://registry.invalid").search : undefined;
    }
    return out;
  }

  /** Starts a blob download; the caller streams and verifies the body. */
  async blob(digest: string, rangeFrom = 0): Promise<Response> {
    const res = await this.request(this.repoUrl(`blobs/${digest}`), rangeFrom > 0 ? { headers: { Range: `bytes=${rangeFrom}-` } } : {});
    if (!res.ok) throw await this.failure(res, `blob ${digest}`);
    return res;
  }

  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.request(this.repoUrl(`blobs/${digest}`), { method: "HEAD" }, false);
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403) throw await this.failure(res, `blob ${digest}`);
    return res.ok;
  }

  /** Tries a cross-repository mount; true when the registry linked the blob. */
  async mountBlob(digest: string, fromPath: string): Promise<boolean> {
    const res = await this.request(this.repoUrl(`blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromPath)}`), { method: "POST" }, false);
    await res.body?.cancel();
    if (res.status === 201) return true;
    if (res.status === 202) {
      // Mount refused but an upload session opened: cancel it.
      const loc = res.headers.get("location");
      if (loc)
        await this.request(this.uploadPath(loc), { method: "DELETE" }, false)
          .then((r) => r.body?.cancel())
          .catch(() => {});
      return false;
    }
    if (res.status === 401 || res.status === 403) throw await this.failure(res, `blob ${digest}`);
    return false;
  }

  private uploadPath(location: string): string {
    const u = new URL(location, "http://registry.invalid");
    return u.pathname + u.search;
  }

  /** Uploads a blob (monolithic PUT after POST). */
  async uploadBlob(digest: string, data: Blob, onProgress?: (sent: number) => void): Promise<void> {
    const start = await this.request(this.repoUrl("blobs/uploads/"), { method: "POST" }, false);
    if (start.status !== 202) throw await this.failure(start, `upload of ${digest}`);
    await start.body?.cancel();
    const loc = new URL(start.headers.get("location") ?? "", "http://registry.invalid");
    loc.searchParams.set("digest", digest);
    // Stream from disk, counting bytes for the progress bar.
    let sent = 0;
    const counted = onProgress
      ? data.stream().pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              sent += chunk.length;
              onProgress(sent);
              controller.enqueue(chunk);
            },
          }),
        )
      : data;
    const put = await this.request(
      loc.pathname + loc.search,
      { method: "PUT", headers: { "Content-Type": "application/octet-stream", "Content-Length": String(data.size) }, body: counted, duplex: "half" } as RequestInit & {
        headers: Record<string, string>;
      },
      false,
    );
    if (put.status !== 201) throw await this.failure(put, `upload of ${digest}`);
    await put.body?.cancel();
  }

  async putManifest(ref: string, mediaType: string, body: Uint8Array): Promise<void> {
    const res = await this.request(this.repoUrl(`manifests/${ref}`), { method: "PUT", headers: { "Content-Type": mediaType }, body }, false);
    if (res.status !== 201) throw await this.failure(res, `manifest ${ref}`);
    await res.body?.cancel();
  }

  /** Ping for docker login: 200 means the credentials (if any were needed) are good. */
  async ping(): Promise<void> {
    const res = await this.request("/v2/", {}, false);
    await res.body?.cancel();
    if (res.status === 401) throw new ImageError("permission_denied", "unauthorized: incorrect username or password");
    if (!res.ok) throw new ImageError("unavailable", `login attempt to ${this.domain} failed with status: ${res.status} ${res.statusText}`);
  }

  private async failure(res: Response, what: string): Promise<ImageError> {
    const detail = await describe(res);
    if (res.status === 404) return new ImageError("not_found", `${what} not found: ${detail}`);
    if (res.status === 401 || res.status === 403) {
      return new ImageError(
        "permission_denied",
        `${this.actions.includes("push") ? "push" : "pull"} access denied for ${this.domain}/${this.path}, repository does not exist or may require 'docker login': ${detail}`,
      );
    }
    return new ImageError("unavailable", `${what}: ${detail}`);
  }
}

export function openRepo(cfg: RegistryConfig, domain: string, path: string, creds: Credentials | undefined, actions = "pull"): RepoSession {
  return new RepoSession(cfg, domain, path, creds, actions);
}
