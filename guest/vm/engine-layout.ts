/**
 * The engine machine's fixed guest paths, shared by vmm (which translates host paths of
 * a container request into these) and the agent inside the machine. Issue 13,
 * docs/architecture.md "Engine in a machine (VM mode)".
 */
import { join } from "node:path";
import { AgentLayout } from "../core/layout.ts";

/** The agent's home inside every machine (guest/boot/stage2.sh passes it). */
export const GUEST_AGENT_HOME = "/var/lib/arcbox";

/** The agent's layout inside a machine (same derivation as guest/main.ts). */
export const guestAgentLayout = new AgentLayout(join(GUEST_AGENT_HOME, "data", "vmm", "host"), join(GUEST_AGENT_HOME, "run"));

/**
 * VirtioFS shares of the engine machine: the tag, the host directory it serves (under
 * the daemon's home, or absolute), where the guest mounts it, and whether it is read-only.
 * - imaged's data dir: layer images (`layer-images/<hex>`, loop-mounted in the guest) and
 *   unpacked layers (`snapshots/<hex>`, used directly as lower dirs). Read-only.
 * - apid's per-container dirs: the json-file log the shim writes and the /etc files apid
 *   writes, at the paths apid reads and writes on the host. Read-write.
 * - the host's root, for bind mounts (`-v /host/dir:/x`) and volumes: any host path a
 *   container names is below it. Read-write. It gives the machine no more than the
 *   Docker API gives its callers already (`-v /:/host` is root on the host in either
 *   mode); docs/architecture.md, "Engine in a machine", says more.
 * The first share holding a path wins, so the specific ones come first.
 */
export const ENGINE_SHARES = [
  { tag: "arcbox-imaged", homeSubdir: "data/imaged", guestDir: "/run/arcbox/imaged", readOnly: true },
  { tag: "arcbox-apid", homeSubdir: "data/apid/containers", guestDir: "/run/arcbox/apid-containers", readOnly: false },
  { tag: "arcbox-host", hostDir: "/", guestDir: "/run/arcbox/host", readOnly: false },
] as const;

/** The host directory a share serves. */
export function shareHostDir(share: (typeof ENGINE_SHARES)[number], homeRoot: string): string {
  return "hostDir" in share ? share.hostDir : join(homeRoot, share.homeSubdir);
}

/** Where the agent loop-mounts layer images (tmpfs: mounts never outlive a boot anyway). */
export const GUEST_LAYER_MOUNTS = "/run/arcbox/layers";

/**
 * A container's upper/work dirs on the machine's own disk. Not in its state dir, which
 * goes when the runtime container is deleted (at each exit): like the host's upper dir
 * (imaged's), they live until the container is removed (the files op "discard",
 * guest/core/rootfs-files.ts), so a restart, docker cp, export, diff and commit of a
 * stopped container see its files.
 */
export function guestRootfsDirs(containerId: string): { upperDir: string; workDir: string } {
  const base = join(guestAgentLayout.stateRoot, "rootfs", containerId);
  return { upperDir: join(base, "upper"), workDir: join(base, "work") };
}

/**
 * Per-phase timings of container operations (guest/platform/phase-trace.ts): written
 * only while this file exists (`machine exec -- touch` it; bench/vm-mode.ts does).
 */
export const GUEST_PHASE_TRACE = "/run/arcbox/phase-trace";

/**
 * Named volumes' data on the engine machine's disk (`<root>/<name>/_data`, as Docker's
 * /var/lib/docker/volumes): fsd keeps the records on the host and asks the agent to
 * make, fill, measure and remove them (guest/vm/machine-volumes.ts). A container's bind
 * source below this root is the machine's own path, not a host path through a share.
 */
export const GUEST_VOLUMES_ROOT = join(GUEST_AGENT_HOME, "volumes");
