/**
 * Docker API version negotiation. Requests may be prefixed `/v1.NN/`; the prefix is
 * checked against the supported range and stripped before routing.
 */
export const API_VERSION = "1.50";
export const MIN_API_VERSION = "1.24";

const versionPrefix = /^\/v(\d+)\.(\d+)(?=\/|$)/;

export function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split(".").map(Number);
  const [bm = 0, bn = 0] = b.split(".").map(Number);
  return am - bm || an - bn;
}

export type VersionedPath = { ok: true; path: string; version: string } | { ok: false; message: string };

export function splitVersionedPath(pathname: string): VersionedPath {
  const m = versionPrefix.exec(pathname);
  if (!m) {
    const loose = /^\/v([0-9.]+)(?=\/|$)/.exec(pathname);
    if (loose) return { ok: false, message: `client version ${loose[1]} is not a valid API version` };
    return { ok: true, path: pathname, version: API_VERSION };
  }
  const version = `${Number(m[1])}.${Number(m[2])}`;
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    return { ok: false, message: `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version` };
  }
  if (compareVersions(version, API_VERSION) > 0) {
    return { ok: false, message: `client version ${version} is too new. Maximum supported API version is ${API_VERSION}` };
  }
  return { ok: true, path: pathname.slice(m[0].length) || "/", version };
}
