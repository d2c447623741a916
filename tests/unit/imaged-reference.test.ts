/** Reference normalization, insecure-registry rules and --change parsing in imaged's core. */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyChanges } from "../../services/imaged/core/changes.ts";
import { parsePlatform, selectManifest } from "../../services/imaged/core/manifest.ts";
import { familiar, formatReference, looksLikeId, parseReference, withDefaultTag } from "../../services/imaged/core/reference.ts";
import { isInsecure, loadRegistryConfig } from "../../services/imaged/core/registry-config.ts";

const full = (s: string) => formatReference(withDefaultTag(parseReference(s)));

test("names normalize the way Docker's do", () => {
  expect(full("busybox")).toBe("docker.io/library/busybox:latest");
  expect(full("library/busybox:1.36")).toBe("docker.io/library/busybox:1.36");
  expect(full("index.docker.io/me/app")).toBe("docker.io/me/app:latest");
  expect(full("me/app:v1")).toBe("docker.io/me/app:v1");
  expect(full("127.0.0.1:5000/busybox")).toBe("127.0.0.1:5000/busybox:latest");
  expect(full("localhost/a/b/c:t")).toBe("localhost/a/b/c:t");
  expect(full("[::1]:5000/x")).toBe("[::1]:5000/x:latest");
  const d = `sha256:${"a".repeat(64)}`;
  expect(full(`busybox@${d}`)).toBe(`docker.io/library/busybox@${d}`);
  expect(full(`busybox:1@${d}`)).toBe(`docker.io/library/busybox:1@${d}`);
  expect(familiar("docker.io/library/busybox:latest")).toBe("busybox:latest");
  expect(familiar("docker.io/me/app:v1")).toBe("me/app:v1");
  expect(familiar("127.0.0.1:5000/busybox:latest")).toBe("127.0.0.1:5000/busybox:latest");
});

test("malformed references are invalid_argument errors", () => {
  for (const bad of ["", "Busybox", "a//b", "a:b:c", "x@sha256:zz", "-lead", "a/b:", `a:${"t".repeat(200)}`]) {
    expect(() => parseReference(bad)).toThrow(/invalid reference format/);
  }
  expect(looksLikeId("175372c7de41")).toBe(true);
  expect(looksLikeId(`sha256:${"f".repeat(64)}`)).toBe(true);
  expect(looksLikeId("busybox")).toBe(false);
});

test("loopback is always insecure; daemon.json adds hosts and CIDRs; mirrors are read", () => {
  const home = mkdtempSync(join(tmpdir(), "arcbox-regcfg-"));
  try {
    expect(loadRegistryConfig(home)).toEqual({ mirrors: [], insecure: [] });
    writeFileSync(join(home, "daemon.json"), JSON.stringify({ "registry-mirrors": ["http://127.0.0.1:9/"], "insecure-registries": ["myreg:5000", "10.99.0.0/16"] }));
    const cfg = loadRegistryConfig(home);
    expect(cfg.mirrors).toEqual(["http://127.0.0.1:9"]);
    expect(isInsecure(cfg, "127.0.0.1:5000")).toBe(true);
    expect(isInsecure(cfg, "localhost:5000")).toBe(true);
    expect(isInsecure(cfg, "myreg:5000")).toBe(true);
    expect(isInsecure(cfg, "10.99.3.4:443")).toBe(true);
    expect(isInsecure(cfg, "10.98.3.4")).toBe(false);
    expect(isInsecure(cfg, "registry.example.com")).toBe(false);
    writeFileSync(join(home, "daemon.json"), "{not json");
    expect(loadRegistryConfig(home)).toEqual({ mirrors: [], insecure: [] });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test("--change instructions apply to the container config", () => {
  const cfg = applyChanges({ Env: ["A=0"] }, ['CMD ["sh", "-c", "x"]', "ENTRYPOINT /init", 'ENV A=1 B="two words"', "EXPOSE 80 53/udp", "VOLUME /data", "WORKDIR /srv", "USER nobody", "LABEL k=v"]);
  expect(cfg).toEqual({
    Env: ["A=1", "B=two words"],
    Cmd: ["sh", "-c", "x"],
    Entrypoint: ["/bin/sh", "-c", "/init"],
    ExposedPorts: { "80/tcp": {}, "53/udp": {} },
    Volumes: { "/data": {} },
    WorkingDir: "/srv",
    User: "nobody",
    Labels: { k: "v" },
  });
  expect(() => applyChanges({}, ["RUN rm -rf /"])).toThrow("RUN is not a valid change command");
});

test("platform selection from an index", () => {
  const m = (architecture: string, variant?: string) => ({ mediaType: "m", digest: `sha256:${architecture}${variant ?? ""}`, size: 1, platform: { os: "linux", architecture, variant } });
  const index = { schemaVersion: 2, manifests: [m("amd64"), m("arm64", "v8"), m("arm", "v6"), m("arm", "v7")] };
  expect(selectManifest(index, parsePlatform("linux/amd64")).digest).toBe("sha256:amd64");
  expect(selectManifest(index, parsePlatform("linux/arm64")).digest).toBe("sha256:arm64v8");
  expect(selectManifest(index, parsePlatform("linux/arm/v7")).digest).toBe("sha256:armv7");
  expect(() => selectManifest(index, parsePlatform("linux/riscv64"))).toThrow("no matching manifest for linux/riscv64");
});
