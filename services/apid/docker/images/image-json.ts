/** Docker Engine API JSON for images (ImageSummary, ImageInspect, HistoryResponseItem). */
import type { HistoryEntry, ImageSummary, InspectResponse } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { compareVersions } from "../api-version.ts";

interface ConfigDoc {
  architecture?: string;
  os?: string;
  variant?: string;
  "os.version"?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  config?: Record<string, unknown>;
  rootfs?: { type?: string; diff_ids?: string[] };
}

/** Older API versions still carry fields that 1.44+ dropped (docker-py reads them). */
const legacy = (apiVersion: string | undefined, below: string) => apiVersion !== undefined && compareVersions(apiVersion, below) < 0;

export function imageSummaryJson(s: ImageSummary, apiVersion?: string): Record<string, unknown> {
  return {
    ...(legacy(apiVersion, "1.44") ? { VirtualSize: Number(s.size) } : {}),
    Id: s.id,
    ParentId: "",
    RepoTags: s.repoTags,
    RepoDigests: s.repoDigests,
    Created: Number(s.createdUnix),
    Size: Number(s.size),
    SharedSize: -1,
    Labels: Object.keys(s.labels).length ? s.labels : {},
    Containers: s.containers,
  };
}

/** Docker always shows these keys of the container config, even when empty. */
function containerConfig(c: Record<string, unknown> | undefined): Record<string, unknown> {
  const cfg = c ?? {};
  return {
    Hostname: "",
    Domainname: "",
    User: cfg.User ?? "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(cfg.ExposedPorts ? { ExposedPorts: cfg.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: cfg.Env ?? null,
    Cmd: cfg.Cmd ?? null,
    ...(cfg.Healthcheck ? { Healthcheck: cfg.Healthcheck } : {}),
    Image: "",
    Volumes: cfg.Volumes ?? null,
    WorkingDir: cfg.WorkingDir ?? "",
    Entrypoint: cfg.Entrypoint ?? null,
    OnBuild: cfg.OnBuild ?? null,
    Labels: cfg.Labels ?? null,
    ...(cfg.StopSignal ? { StopSignal: cfg.StopSignal } : {}),
    ...(cfg.Shell ? { Shell: cfg.Shell } : {}),
  };
}

export function imageInspectJson(r: InspectResponse, apiVersion?: string): Record<string, unknown> {
  const cfg = JSON.parse(r.configJson) as ConfigDoc;
  const dirs = r.layerDirs;
  const graph: Record<string, string> = {};
  if (dirs.length > 0) {
    graph.UpperDir = `${dirs[dirs.length - 1]}`;
    graph.MergedDir = "";
    graph.WorkDir = "";
    if (dirs.length > 1) graph.LowerDir = dirs.slice(0, -1).reverse().join(":");
  }
  return {
    Id: r.id,
    RepoTags: r.repoTags,
    RepoDigests: r.repoDigests,
    Parent: r.parent,
    Comment: cfg.comment ?? "",
    Created: cfg.created ?? new Date(Number(r.createdUnix) * 1000).toISOString(),
    DockerVersion: cfg.docker_version ?? "",
    Author: cfg.author ?? "",
    Config: containerConfig(cfg.config),
    Architecture: cfg.architecture ?? "",
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: cfg.os ?? "linux",
    ...(cfg["os.version"] ? { OsVersion: cfg["os.version"] } : {}),
    Size: Number(r.size),
    ...(legacy(apiVersion, "1.44") ? { VirtualSize: Number(r.size) } : {}),
    ...(legacy(apiVersion, "1.45") ? { Container: "", ContainerConfig: containerConfig(undefined) } : {}),
    GraphDriver: { Data: graph, Name: "overlay2" },
    RootFS: { Type: cfg.rootfs?.type ?? "layers", Layers: cfg.rootfs?.diff_ids ?? [] },
    Metadata: { LastTagTime: r.lastTagTimeUnixNano > 0n ? new Date(Number(r.lastTagTimeUnixNano / 1_000_000n)).toISOString() : "0001-01-01T00:00:00Z" },
  };
}

export function historyJson(e: HistoryEntry): Record<string, unknown> {
  return { Id: e.id, Created: Number(e.createdUnix), CreatedBy: e.createdBy, Tags: e.tags.length ? e.tags : null, Size: Number(e.size), Comment: e.comment };
}
