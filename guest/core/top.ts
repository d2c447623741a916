/**
 * `docker top`: the container's pids from `runc ps`, then the host's `ps` output
 * filtered to those pids (what Docker Engine does).
 */
import { newTopResponse, newTopRow } from "../../proto/gen/arcbox/machines/v1/machines_codec.ts";
import type { TopResponse } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { runTool, toolPath } from "../platform/run-tool.ts";
import { GuestError } from "./guest-error.ts";

export function parsePsOutput(output: string, pids: number[]): TopResponse {
  const lines = output.split("\n").filter((l) => l.trim());
  const titles = (lines[0] ?? "").trim().split(/\s+/);
  const pidIndex = titles.indexOf("PID");
  if (pidIndex < 0) throw new GuestError("invalid_argument", "Couldn't find PID field in ps output");
  const wanted = new Set(pids);
  const processes = [];
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    // The last column (the command) may contain spaces.
    const columns = [...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(" ")];
    if (wanted.has(Number(fields[pidIndex]))) processes.push({ ...newTopRow(), columns });
  }
  return { ...newTopResponse(), titles, processes };
}

export async function top(pids: number[], psArgs: string): Promise<TopResponse> {
  const args = (psArgs || "-ef").trim().split(/\s+/);
  const r = await runTool([toolPath("ps"), ...args]);
  if (r.code !== 0) throw new GuestError("invalid_argument", `ps: ${r.stderr.trim()}`);
  return parsePsOutput(r.stdout, pids);
}
