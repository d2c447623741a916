/**
 * The container list filters (id, name, label, status, exited, ancestor, before, since,
 * network, volume, is-task) over parsed Docker `filters` (docker/filters.ts parses them).
 */
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";

export type Filters = Map<string, string[]>;

export const CONTAINER_FILTERS = ["id", "name", "label", "status", "exited", "ancestor", "before", "since", "network", "volume", "is-task", "health", "publish", "expose"];
const STATUSES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"];

export function containerFilter(filters: Filters, find: (ref: string) => ContainerRecord | undefined, imageMatches: (rec: ContainerRecord, ref: string) => boolean): (rec: ContainerRecord) => boolean {
  for (const s of filters.get("status") ?? []) if (!STATUSES.includes(s)) throw new ContainerError("invalid_argument", `invalid filter 'status=${s}'`);
  for (const e of filters.get("exited") ?? []) if (!/^-?\d+$/.test(e)) throw new ContainerError("invalid_argument", `invalid filter 'exited=${e}'`);
  const anchor = (key: string) => {
    const ref = filters.get(key)?.[0];
    if (!ref) return undefined;
    const rec = find(ref);
    if (!rec) throw new ContainerError("not_found", `No such container: ${ref}`);
    return Date.parse(rec.created);
  };
  const before = anchor("before");
  const since = anchor("since");
  const any = (key: string, pred: (v: string) => boolean) => {
    const vs = filters.get(key);
    return !vs || vs.length === 0 || vs.some(pred);
  };
  return (rec) => {
    const labels: Record<string, string> = rec.config.Labels ?? {};
    const created = Date.parse(rec.created);
    return (
      any("id", (v) => rec.id.startsWith(v)) &&
      any("name", (v) => {
        try {
          return new RegExp(v.replace(/^\//, "")).test(rec.name.slice(1));
        } catch {
          return rec.name.slice(1).includes(v);
        }
      }) &&
      (filters.get("label") ?? []).every((v) => {
        const i = v.indexOf("=");
        return i < 0 ? v in labels : labels[v.slice(0, i)] === v.slice(i + 1);
      }) &&
      any("status", (v) => rec.state.status === v) &&
      any("exited", (v) => rec.state.status === "exited" && rec.state.exitCode === Number(v)) &&
      any("ancestor", (v) => imageMatches(rec, v)) &&
      any("network", (v) => rec.hostConfig.NetworkMode === v || (rec.network?.endpoints ?? []).some((e) => e.networkName === v || e.networkId.startsWith(v))) &&
      any("volume", (v) => rec.mounts.some((m) => m.Name === v || m.Destination === v || m.Source === v)) &&
      any("is-task", (v) => v === "false") &&
      (before === undefined || created < before) &&
      (since === undefined || created > since)
    );
  };
}
