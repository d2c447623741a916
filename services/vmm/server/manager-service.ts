/**
 * Connect handlers of MachineManagerService: translation between protobuf messages and
 * VmMachines (records, lifecycle) and MachineExecs (processes in machines).
 */
import { create } from "@bufbuild/protobuf";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import { MachineError } from "../core/machine-error.ts";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { MachineInfoSchema, MachineManagerService, MachineMountSchema, type MachineInfo, type MachineMount as MachineMountMsg } from "../../../proto/gen/arcbox/machines/v1/manager_pb.ts";
import type { MachineMount, MountRequest } from "../core/machine-mounts.ts";
import type { MachineRecord } from "../core/machine-model.ts";
import type { VmMachines } from "../core/vm-machines.ts";
import type { MachineExecs } from "../core/machine-execs.ts";
import { followFile } from "../platform/follow-file.ts";
import { qemuPaths } from "../backend/qemu/qemu-argv.ts";
import type { PortForwarding } from "../core/machine-ports.ts";

const toMountMsg = (m: MachineMount) => create(MachineMountSchema, m);
const fromMountMsg = (m: MachineMountMsg | undefined): MountRequest => ({ hostDir: m?.hostDir ?? "", guestDir: m?.guestDir ?? "", readOnly: m?.readOnly ?? false, cacheMode: m?.cacheMode ?? "" });

export function toInfo(m: MachineRecord, dir: string, fwd?: PortForwarding): MachineInfo {
  return create(MachineInfoSchema, {
    name: m.name,
    state: m.state,
    image: m.image,
    imageId: m.imageId,
    cpus: m.cpus,
    memoryMib: m.memoryMib,
    diskGib: m.diskGib,
    accel: m.accel,
    accelNote: m.accelNote,
    pid: m.pid,
    ip: m.ip,
    mac: m.mac,
    createdUnixMs: BigInt(m.createdMs),
    startedUnixMs: BigInt(m.startedMs),
    stoppedUnixMs: BigInt(m.stoppedMs),
    stopReason: m.stopReason,
    backend: m.backend,
    dir,
    mounts: m.mounts.map(toMountMsg),
    forwardedPorts: fwd?.ports ?? [],
    portErrors: fwd?.errors ?? [],
  });
}

/** The engine machine (VM mode) is the daemon's: users cannot create or remove it. */
function reserved(name: string): undefined {
  if (name === ENGINE_MACHINE) throw new MachineError("invalid_argument", `machine name ${ENGINE_MACHINE} is reserved for the engine machine (arcbox start --vm)`);
  return undefined;
}

export function managerRoutes(router: ConnectRouter, machines: VmMachines, execs: MachineExecs, forwarding?: (name: string) => PortForwarding): void {
  const info = (m: MachineRecord) => toInfo(m, machines.dir(m.name), forwarding?.(m.name));
  router.service(MachineManagerService, {
    create: async (req) => ({
      machine: info(
        reserved(req.name) ??
          (await machines.create({ name: req.name, image: req.image, cpus: req.cpus, memoryMib: req.memoryMib, diskGib: req.diskGib, noStart: req.noStart, mounts: req.mounts.map(fromMountMsg) })),
      ),
    }),
    addMount: (req) => ({ machine: info(machines.addMount(req.name, fromMountMsg(req.mount))) }),
    removeMount: (req) => ({ machine: info(machines.removeMount(req.name, req.guestDir)) }),
    listMounts: (req) => ({ mounts: machines.mounts(req.name).map(toMountMsg) }),
    start: async (req) => ({ machine: info(await machines.start(req.name)) }),
    stop: async (req) => ({ machine: info(await machines.stop(req.name, req.timeoutSeconds || undefined)) }),
    restart: async (req) => ({ machine: info(await machines.restart(req.name, req.timeoutSeconds || undefined)) }),
    remove: async (req) => {
      reserved(req.name);
      await machines.remove(req.name, req.force);
      return {};
    },
    list: () => ({ machines: machines.list().map(info) }),
    inspect: (req) => ({ machine: info(machines.get(req.name)) }),
    async *logs(req, ctx: HandlerContext) {
      machines.get(req.name);
      const path = qemuPaths(machines.dir(req.name)).console;
      for await (const data of followFile(path, { follow: req.follow, signal: ctx.signal, stop: machines.waitExit(req.name) })) yield { data };
    },
    createExec: async (req) => {
      const e = await execs.create({ machine: req.name, args: req.args, env: req.env, cwd: req.cwd, tty: req.tty, stdin: req.stdin, rows: req.rows, cols: req.cols });
      return { execId: e.id, socket: e.socket };
    },
    resizeExec: async (req) => {
      await execs.resize(req.execId, req.rows, req.cols);
      return {};
    },
    waitExec: async (req, ctx: HandlerContext) => ({ exitCode: await execs.wait(req.execId, ctx.signal) }),
  });
}
