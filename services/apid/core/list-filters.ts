/**
 * The container list filters (id, name, label, status, exited, ancestor, before, since,
 * network, volume, is-task, health) over Docker `filters` already parsed and checked at
 * the edge (docker/filters.ts, FILTERS.containerList).
 */
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";
import { compileLinear } from "./linear-regex.ts";

export interface ContainerListFilters {
  id?: string[];
  name?: string[];
  label?: string[];
  status?: string[];
  exited?: number[];
  ancestor?: string[];
  before?: string[];
  since?: string[];
  network?: string[];
  volume?: string[];
  "is-task"?: boolean;
  health?: string[];
  publish?: string[];
  expose?: string[];
}

export function containerFilter(
  filters: ContainerListFilters,
  find: (ref: string) => ContainerRecord | undefined,
  imageMatches: (rec: ContainerRecord, ref: string) => boolean,
  healthOf: (rec: ContainerRecord) => string = () => "none",
): (rec: ContainerRecord) => boolean {
  const anchor = (refs: string[] | undefined) => {
    const ref = refs?.[0];
    if (!ref) return undefined;
    const rec = find(ref);
    if (!rec) throw new ContainerError("not_found", `No such container: ${ref}`);
    return Date.parse(rec.created);
  };
  const before = anchor(filters.before);
  const since = anchor(filters.since);
  const any = <T>(vs: T[] | undefined, pred: (v: T) => boolean) => !vs || vs.length === 0 || vs.some(pred);
  // Docker matches names as Go regular expressions (linear time; a backtracking RegExp
  // could be made to run for minutes); a pattern outside the subset matches as text.
  const names = filters.name?.map((v) => {
    const pattern = v.replace(/^\//, "");
    return compileLinear(pattern) ?? ((name: string) => name.includes(v));
  });
  return (rec) => {
    const labels: Record<string, string> = rec.config.Labels ?? {};
    const created = Date.parse(rec.created);
    return (
      any(filters.id, (v) => rec.id.startsWith(v)) &&
      any(names, (matches) => matches(rec.name.slice(1))) &&
      (filters.label ?? []).every((v) => {
        const i = v.indexOf("=");
        return i < 0 ? Object.hasOwn(labels, v) : Object.hasOwn(labels, v.slice(0, i)) && labels[v.slice(0, i)] === v.slice(i + 1);
      }) &&
      any(filters.status, (v) => rec.state.status === v) &&
      any(filters.exited, (v) => rec.state.status === "exited" && rec.state.exitCode === v) &&
      any(filters.ancestor, (v) => imageMatches(rec, v)) &&
      any(filters.network, (v) => rec.hostConfig.NetworkMode === v || (rec.network?.endpoints ?? []).some((e) => e.networkName === v || e.networkId.startsWith(v))) &&
      any(filters.volume, (v) => rec.mounts.some((m) => m.Name === v || m.Destination === v || m.Source === v)) &&
      // ArcBox runs no swarm tasks.
      filters["is-task"] !== true &&
      any(filters.health, (v) => healthOf(rec) === v) &&
      (before === undefined || created < before) &&
      (since === undefined || created > since)
    );
  };
}
