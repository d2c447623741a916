/**
 * Drops UDP conntrack entries for host ports as they are published or unpublished:
 * a flow that existed before (e.g. a client retrying while the container started)
 * would otherwise keep bypassing, or keep using, the DNAT rule. Docker does the same.
 */
import { exec } from "./exec.ts";

export async function flushUdpFlows(hostPorts: number[]): Promise<void> {
  if (hostPorts.length === 0) return;
  const script = hostPorts.map((p) => `conntrack -D -p udp --orig-port-dst ${p} >/dev/null 2>&1`).join("; ");
  await exec(["sh", "-c", `${script}; true`]);
}
