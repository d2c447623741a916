/**
 * VM mode: the kernel side of container networking in the engine machine. netd decides
 * (addresses, links, rules) and sends the `ip`, `iptables-restore` and `sysctl` steps;
 * the agent runs them here (tools from the tools image: iproute2, iptables-legacy).
 * The first call loads the networking modules (bridge, veth, netfilter; the tools
 * image's modules/net) and turns on forwarding, unless stage 2 did at boot (the engine
 * machine, which runs networked containers: it loads them while the vCPU is idle).
 */
import { existsSync } from "node:fs";
import { GuestError } from "../core/guest-error.ts";
import { runTool, toolPath } from "../platform/run-tool.ts";

export interface NetworkCommand {
  argv: string[];
  stdin: Uint8Array;
  mayFail: boolean;
}

export interface NetworkCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What netd may run (namespace changes go through `ip netns` and `nsenter`). */
const ALLOWED = new Set(["ip", "iptables-restore", "iptables-save", "sysctl", "nsenter"]);
const TOOLS_DIR = "/opt/arcbox";
const NET_MODULES = `${TOOLS_DIR}/modules/net`;
/** iptables' extensions (libxt_*.so) in the tools image, not at Debian's path. */
const XTABLES_LIBDIR = `${TOOLS_DIR}/lib/xtables`;

let prepared: Promise<void> | undefined;

/** Stage 2 loaded them at boot already (the engine machine, guest/boot/stage2.sh). */
const LOADED_MARKER = "/run/arcbox/net-modules-loaded";

/** Loads the networking modules once (in dependency order; "exists" is fine) and enables forwarding. */
function prepare(): Promise<void> {
  prepared ??= (async () => {
    if (existsSync(LOADED_MARKER)) return;
    if (existsSync(`${NET_MODULES}/load-order`)) {
      const script = `while read -r ko; do insmod "${NET_MODULES}/$ko" 2>/dev/null || true; done < "${NET_MODULES}/load-order"; echo 1 > /proc/sys/net/ipv4/ip_forward`;
      const r = await runTool([toolPath("busybox"), "sh", "-c", script]);
      if (r.code !== 0) throw new GuestError("internal", `loading the networking modules failed: ${r.stderr.trim()}`);
    }
  })().catch((err) => {
    prepared = undefined;
    throw err;
  });
  return prepared;
}

export async function runNetworkCommands(commands: NetworkCommand[]): Promise<NetworkCommandResult[]> {
  for (const c of commands) {
    if (!ALLOWED.has(c.argv[0] ?? "")) throw new GuestError("invalid_argument", `network command ${JSON.stringify(c.argv[0] ?? "")} is not one the agent runs`);
  }
  await prepare();
  const results: NetworkCommandResult[] = [];
  for (const c of commands) {
    const r = await runTool([toolPath(c.argv[0]!), ...c.argv.slice(1)], { stdin: c.stdin.length ? c.stdin : undefined, env: { XTABLES_LIBDIR } });
    results.push(r);
    if (r.code !== 0 && !c.mayFail) break;
  }
  return results;
}
