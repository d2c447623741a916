import { describe, expect, test } from "bun:test";
import { API_VERSION, MIN_API_VERSION, compareVersions, splitVersionedPath } from "../../services/apid/docker/api-version.ts";

describe("Docker API version negotiation", () => {
  test("strips a supported version prefix", () => {
    expect(splitVersionedPath("/v1.50/containers/json")).toEqual({ ok: true, path: "/containers/json", version: "1.50" });
    expect(splitVersionedPath("/v1.24/version")).toEqual({ ok: true, path: "/version", version: "1.24" });
    expect(splitVersionedPath("/v1.41")).toEqual({ ok: true, path: "/", version: "1.41" });
  });

  test("unversioned paths get the newest version, and /volumes or /version are not mistaken for a prefix", () => {
    expect(splitVersionedPath("/volumes")).toEqual({ ok: true, path: "/volumes", version: API_VERSION });
    expect(splitVersionedPath("/version")).toEqual({ ok: true, path: "/version", version: API_VERSION });
  });

  test("rejects versions outside the supported range with Docker's wording", () => {
    const old = splitVersionedPath("/v1.12/info");
    expect(old.ok).toBe(false);
    if (!old.ok) expect(old.message).toBe(`client version 1.12 is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
    const future = splitVersionedPath("/v1.99/info");
    expect(future.ok).toBe(false);
    if (!future.ok) expect(future.message).toBe(`client version 1.99 is too new. Maximum supported API version is ${API_VERSION}`);
    expect(splitVersionedPath("/v2/info").ok).toBe(false);
  });

  test("compares minor versions numerically", () => {
    expect(compareVersions("1.9", "1.10")).toBeLessThan(0);
    expect(compareVersions("1.50", "1.50")).toBe(0);
    expect(compareVersions("2.0", "1.99")).toBeGreaterThan(0);
  });
});
