/**
 * Docker Engine as the comparison peer: Debian's `dockerd` (docker.io) in a network
 * namespace of its own, with its own data root, exec root, pidfile and socket on the
 * host filesystem. Its docker0, bridges, veths, iptables chains, FORWARD policy and
 * docker-proxy all live in that namespace, so a bench never touches the host's own
 * Docker (or anything else it did not create): stopping the peer deletes the namespace,
 * which takes all of that with it, and nothing else.
 *
 * A veth pair links the namespace to the host (link-local /30: the host end is
 * `hostAddr`, the namespace end `peerAddr`, the default route inside goes to the host),
 * so the peer can pull from a registry the bench serves on `hostAddr`. To the peer, the
 * namespace is "the host": published ports and "container -> host" traffic are measured
 * from processes run inside it (`PeerNetns.exec`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Subprocess } from "bun";

export interface PeerNetns {
  /** Name under /run/netns. */
  name: string;
  /** The host end of the veth pair and its address (no prefix length). */
  hostIf: string;
  hostAddr: string;
  /** The namespace end's address. */
  peerAddr: string;
  /** argv prefix that runs a command inside the namespace. */
  exec: string[];
  /** Deletes the namespace (and with it the veth pair and whatever the peer built inside). */
  remove(): void;
}

function sh(argv: string[], stdin?: string): void {
  const p = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${p.stderr.toString().trim()}`);
}

/** A free link-local /30 (169.254.0.0/16 is never routed, and ArcBox and Docker never pick it). */
function pickLinkLocal(): { host: string; peer: string } {
  const used = Bun.spawnSync(["ip", "-4", "-o", "addr", "show"]).stdout.toString();
  for (;;) {
    const [a, b] = randomBytes(2);
    const third = 1 + (a! % 253);
    if (third === 169) continue;
    const base = (b! % 63) * 4;
    const prefix = `169.254.${third}.`;
    if (used.includes(` ${prefix}${base + 1}/`) || used.includes(` ${prefix}${base + 2}/`)) continue;
    return { host: `${prefix}${base + 1}`, peer: `${prefix}${base + 2}` };
  }
}

export function createPeerNetns(): PeerNetns {
  const id = randomBytes(3).toString("hex");
  const name = `bench-dockerd-${id}`;
  const hostIf = `bdk${id}h`;
  const peerIf = `bdk${id}p`;
  const { host, peer } = pickLinkLocal();
  sh(["ip", "netns", "add", name]);
  const remove = () => {
    // The veth pair goes with the namespace; the host end is deleted first so it is gone now.
    Bun.spawnSync(["ip", "link", "del", hostIf], { stderr: "ignore" });
    Bun.spawnSync(["ip", "netns", "del", name], { stderr: "ignore" });
  };
  try {
    sh(["ip", "-batch", "-"], [`link add ${hostIf} type veth peer name ${peerIf} netns ${name}`, `addr add ${host}/30 dev ${hostIf}`, `link set ${hostIf} up`, ""].join("\n"));
    sh(["ip", "-n", name, "-batch", "-"], ["link set lo up", `addr add ${peer}/30 dev ${peerIf}`, `link set ${peerIf} up`, `route add default via ${host}`, ""].join("\n"));
  } catch (err) {
    remove();
    throw err;
  }
  return { name, hostIf, hostAddr: host, peerAddr: peer, exec: ["nsenter", `--net=/run/netns/${name}`, "--"], remove };
}

/**
 * What a Docker on the host owns there: docker0, br-… and veth… links and every DOCKER or
 * docker0 iptables line (with policies). The peer must leave it exactly as it was.
 */
function hostDockerFootprint(): string {
  const links = Bun.spawnSync(["ip", "-o", "link", "show"])
    .stdout.toString()
    .split("\n")
    .map((l) => l.split(":")[1]?.trim() ?? "")
    .filter((n) => /^(docker0|br-|veth|bdk)/.test(n));
  const rules = Bun.spawnSync(["iptables-save"])
    .stdout.toString()
    .split("\n")
    .filter((l) => /DOCKER|docker0|^:FORWARD /.test(l))
    .map((l) => l.replace(/\[\d+:\d+\]/, ""));
  return [...links.sort(), ...rules.sort()].join("\n");
}

export interface DockerEngine {
  socket: string;
  host: string;
  pid: number;
  root: string;
  netns: PeerNetns;
  stop(): Promise<void>;
}

export interface DockerdOptions {
  /** Extra dockerd flags, e.g. ["--insecure-registry", "169.254.7.1:5000"]. */
  args?: string[];
  /** docker0 and iptables (inside the peer's namespace); off by default: most benches need none. */
  networking?: boolean;
  /** Run in this namespace (kept on stop) instead of a new one (deleted on stop). */
  netns?: PeerNetns;
}

export async function pingDocker(socket: string): Promise<boolean> {
  try {
    const res = await fetch("http://d/_ping", { unix: socket } as RequestInit);
    return res.ok;
  } catch {
    return false;
  }
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<DockerEngine & { proc: Subprocess }> {
  const root = mkdtempSync(join(tmpdir(), "bench-dockerd-"));
  const footprint = hostDockerFootprint();
  const netns = opts.netns ?? createPeerNetns();
  const ownNetns = !opts.netns;
  const socket = join(root, "docker.sock");
  const net = opts.networking ? [] : ["--bridge=none", "--iptables=false", "--ip6tables=false"];
  // nsenter (not `ip netns exec`: that remounts /sys and so hides the cgroup mounts dockerd
  // needs) execs dockerd in place, so proc.pid is dockerd's pid.
  const proc = Bun.spawn(
    [
      ...netns.exec,
      "dockerd",
      "--data-root",
      join(root, "data"),
      "--exec-root",
      join(root, "exec"),
      "--pidfile",
      join(root, "dockerd.pid"),
      "-H",
      `unix://${socket}`,
      "--containerd-namespace",
      "bench",
      "--log-level",
      "warn",
      ...net,
      ...(opts.args ?? []),
    ],
    { stdout: Bun.file(join(root, "dockerd.log")), stderr: Bun.file(join(root, "dockerd.err.log")) },
  );
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    if (ownNetns) netns.remove();
    rmSync(root, { recursive: true, force: true });
    // A host Docker busy meanwhile changes this too; the peer itself never should.
    if (hostDockerFootprint() !== footprint) console.warn("warning: the host's Docker links or iptables rules changed while the peer ran");
  };
  const deadline = Date.now() + 60_000;
  while (!(await pingDocker(socket))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      const err = new Error(`dockerd did not start; see ${root}/dockerd.err.log`);
      proc.kill("SIGKILL");
      await proc.exited;
      if (ownNetns) netns.remove();
      throw err;
    }
    await Bun.sleep(10);
  }
  return { proc, socket, host: `unix://${socket}`, pid: proc.pid, root, netns, stop };
}
