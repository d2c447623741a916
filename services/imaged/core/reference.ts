/**
 * Image references the way Docker reads them: `busybox` is
 * `docker.io/library/busybox:latest`, `host:port/repo` keeps its registry, and a
 * reference may carry a tag, a digest or both. Stored names are always fully
 * qualified; `familiar()` gives the short form Docker shows (`busybox:latest`).
 */
import { ImageError } from "./errors.ts";

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DOMAIN = "index.docker.io";

export interface Reference {
  /** Registry host[:port], e.g. "docker.io" or "127.0.0.1:5000". */
  domain: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
}

const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const domainPattern = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

/** A registry host as references name it: host[:port] or [IPv6][:port]. */
export function isRegistryHost(s: string): boolean {
  return domainPattern.test(s);
}

/** Parses and normalizes a reference; throws invalid_argument on malformed input. */
export function parseReference(input: string): Reference {
  const bad = (why: string) => new ImageError("invalid_argument", `invalid reference format: ${why}`);
  if (!input || input.length > 4096) throw bad("repository name must have at least one component");
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw bad(`invalid digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw bad(`invalid tag ${JSON.stringify(tag)}`);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!isRegistryHost(domain)) throw bad(`invalid domain ${JSON.stringify(domain)}`);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  if (path.length === 0 || !path.split("/").every((c) => pathComponent.test(c))) {
    if (path !== path.toLowerCase()) throw bad("repository name must be lowercase");
    throw bad(JSON.stringify(input));
  }
  if (domain.length + path.length + 1 > 255) throw bad("repository name must not be more than 255 characters");
  return { domain, path, tag, digest };
}

/** Adds `latest` when neither tag nor digest is given. */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag || ref.digest ? ref : { ...ref, tag: "latest" };
}

/** "domain/path" */
export function repository(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** Fully qualified string: domain/path[:tag][@digest]. */
export function formatReference(ref: Reference): string {
  return `${repository(ref)}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/** The short form Docker prints: docker.io/library/x -> x, docker.io/u/x -> u/x. */
export function familiarRepository(repo: string): string {
  if (repo.startsWith(`${DEFAULT_DOMAIN}/`)) {
    const path = repo.slice(DEFAULT_DOMAIN.length + 1);
    return path.startsWith("library/") && path.split("/").length === 2 ? path.slice("library/".length) : path;
  }
  return repo;
}

/** Familiar form of a full reference string ("docker.io/library/busybox:latest" -> "busybox:latest"). */
export function familiar(full: string): string {
  const ref = parseReference(full);
  return `${familiarRepository(repository(ref))}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/** True for a (possibly short, possibly "sha256:"-prefixed) hex image ID. */
export function looksLikeId(s: string): boolean {
  return /^(sha256:)?[a-f0-9]{4,64}$/.test(s);
}
