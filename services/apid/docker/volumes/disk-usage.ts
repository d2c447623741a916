/** The Volumes part of /system/df: every volume with its size and how many containers use it. */
import type { DockerApiDeps } from "../deps.ts";
import { volumeJson } from "./volume-json.ts";

export async function volumeDiskUsage(deps: DockerApiDeps) {
  const { volumes } = await deps.clients.volumes.list({ withSize: true });
  return volumes.map((v) => volumeJson(v, true));
}
