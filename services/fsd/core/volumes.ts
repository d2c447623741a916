/**
 * Volumes of the local driver: create/inspect/list/remove/prune for the Docker API,
 * and Mount/Unmount for containers (reference counts, option mounts, first-use copy of
 * the image content). Changes run one at a time.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { engineMode } from "../../../lib/engine-mode.ts";
import type { VolumeStore } from "../storage/volume-store.ts";
import { HostVolumeData } from "../platform/host-volume-data.ts";
import { dataDir, isMountpoint, makeVolumeDirs, mountWithOptions, unmount } from "../platform/volume-fs.ts";
import { ANONYMOUS_LABEL, type VolumeRecord } from "./model.ts";
import type { VolumeData } from "./volume-data.ts";
import { VolumeError } from "./volume-error.ts";

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const LOCAL_OPTS = new Set(["type", "o", "device", "size"]);

export interface VolumeView extends VolumeRecord {
  mountpoint: string;
  inUseBy: string[];
  sizeBytes: number;
}

export interface MountInput {
  containerId: string;
  name: string;
  target: string;
  imageLowerDirs: string[];
  noCopy: boolean;
  driver: string;
  driverOpts: Record<string, string>;
  labels: Record<string, string>;
}

export class Volumes {
  readonly root: string;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly hostData: HostVolumeData;

  constructor(
    private readonly store: VolumeStore,
    serviceDataDir: string,
    /** VM mode: where named volumes without options keep their data (the engine machine). */
    private readonly machineData?: VolumeData,
  ) {
    this.root = join(serviceDataDir, "volumes");
    mkdirSync(this.root, { recursive: true, mode: 0o701 });
    this.hostData = new HostVolumeData(this.root);
  }

  /**
   * Where a volume's files are. In VM mode a plain named volume lives on the engine
   * machine's disk, as Docker Desktop keeps /var/lib/docker/volumes in its VM; a volume
   * with options stays on the host: an o=bind one is a host directory by definition,
   * and a type=tmpfs one is mounted in the machine over its host path (machineTmpfsOf).
   */
  private dataOf(v: VolumeRecord): VolumeData {
    return this.machineData && Object.keys(v.options).length === 0 ? this.machineData : this.hostData;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  create(name: string, driver: string, opts: Record<string, string>, labels: Record<string, string>): Promise<VolumeView> {
    return this.exclusive(async () => this.view(await this.createLocked(name, driver, opts, labels, false)));
  }

  private async createLocked(name: string, driver: string, opts: Record<string, string>, labels: Record<string, string>, anonymous: boolean): Promise<VolumeRecord> {
    const drv = driver || "local";
    if (drv !== "local") throw new VolumeError("not_found", `error looking up volume plugin ${drv}: plugin "${drv}" not found`);
    const volName = name || randomBytes(32).toString("hex");
    if (!NAME_RE.test(volName)) {
      throw new VolumeError(
        "invalid_argument",
        `create ${volName}: "${volName}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      );
    }
    for (const k of Object.keys(opts)) if (!LOCAL_OPTS.has(k)) throw new VolumeError("invalid_argument", `create ${volName}: invalid option key: "${k}"`);
    if (opts.device && !opts.type && !(opts.o ?? "").split(",").includes("bind")) throw new VolumeError("invalid_argument", `create ${volName}: missing required option: "type"`);
    const existing = this.store.get(volName);
    if (existing) {
      if (JSON.stringify(existing.options) !== JSON.stringify(opts) && Object.keys(opts).length) {
        throw new VolumeError("conflict", `create ${volName}: volume already exists with different options`);
      }
      return existing;
    }
    const rec: VolumeRecord = {
      name: volName,
      driver: drv,
      createdAt: new Date().toISOString(),
      options: opts,
      anonymous,
      populated: false,
      labels: anonymous ? { [ANONYMOUS_LABEL]: "", ...labels } : labels,
    };
    // The machine's data dir is made on first use (a create must not boot the machine).
    if (this.dataOf(rec) === this.hostData) makeVolumeDirs(this.root, volName);
    this.store.put(rec);
    return rec;
  }

  inspect(name: string): VolumeView {
    return this.view(this.get(name));
  }

  private get(name: string): VolumeRecord {
    const v = this.store.get(name);
    if (!v) throw new VolumeError("not_found", `get ${name}: no such volume`);
    return v;
  }

  async list(withSize: boolean): Promise<VolumeView[]> {
    const users = this.store.allUsers();
    const all = this.store.all();
    const sizes = withSize ? await this.sizes(all) : new Map<string, number>();
    return all.map((v) => ({ ...this.view(v, users.get(v.name) ?? []), sizeBytes: sizes.get(v.name) ?? -1 }));
  }

  /** Sizes by name: one call for the machine's volumes, du for the host's. */
  private async sizes(vols: VolumeRecord[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const data of new Set(vols.map((v) => this.dataOf(v)))) {
      const names = vols.filter((v) => this.dataOf(v) === data).map((v) => v.name);
      const sizes = await data.sizes(names);
      for (const [i, n] of names.entries()) out.set(n, sizes[i] ?? -1);
    }
    return out;
  }

  remove(name: string, force: boolean): Promise<void> {
    return this.exclusive(async () => {
      const v = this.store.get(name);
      if (!v) {
        if (force) return;
        throw new VolumeError("not_found", `get ${name}: no such volume`);
      }
      const users = this.store.users(name);
      if (users.length) throw new VolumeError("conflict", `remove ${name}: volume is in use - [${users.join(", ")}]`);
      await this.destroy(name);
    });
  }

  /** Files first: a volume that cannot be removed keeps its record. */
  private async destroy(name: string): Promise<void> {
    const v = this.store.get(name);
    if (v) await this.dataOf(v).remove(name);
    this.store.delete(name);
  }

  prune(labels: string[], notLabels: string[], all: boolean): Promise<{ deleted: string[]; reclaimed: number }> {
    return this.exclusive(async () => {
      const users = this.store.allUsers();
      const deleted: string[] = [];
      let reclaimed = 0;
      for (const v of this.store.all()) {
        if (users.get(v.name)?.length) continue;
        if (!all && !v.anonymous) continue;
        if (!labels.every((l) => labelMatches(v.labels, l)) || notLabels.some((l) => labelMatches(v.labels, l))) continue;
        const [size = -1] = await this.dataOf(v).sizes([v.name]);
        await this.destroy(v.name);
        deleted.push(v.name);
        if (size > 0) reclaimed += size;
      }
      return { deleted, reclaimed };
    });
  }

  /** CONTRACT with apid: resolves or creates the volume, mounts its options, fills it on first use. */
  mount(m: MountInput): Promise<{ name: string; source: string; anonymous: boolean; machineTmpfs?: string }> {
    return this.exclusive(async () => {
      if (!m.containerId) throw new VolumeError("invalid_argument", "container_id is required");
      const anonymous = m.name === "";
      const fresh = anonymous || !this.store.get(m.name);
      const v = await this.createLocked(m.name, m.driver, m.driverOpts, m.labels, anonymous);
      const data = this.dataOf(v);
      const source = data.path(v.name);
      const machineTmpfs = machineTmpfsOf(v);
      try {
        if (machineTmpfs === undefined && Object.keys(v.options).length && !isMountpoint(source)) await mountWithOptions(source, v.options);
        // A machine tmpfs is empty at each first use (the host copy would be hidden under it).
        if (machineTmpfs === undefined) {
          const fill = !v.populated && !m.noCopy && m.imageLowerDirs.length && m.target ? { lowerDirs: m.imageLowerDirs, target: m.target } : undefined;
          // Each use: the machine's data dir may be new (a removal done at its boot).
          await data.prepare(v.name, fill);
          if (!v.populated) this.store.put({ ...v, populated: true });
        }
      } catch (err) {
        // A volume this call created is not left behind half-made.
        if (fresh) await this.destroy(v.name);
        throw err;
      }
      this.store.addRef(v.name, m.containerId);
      return { name: v.name, source, anonymous: v.anonymous, ...(machineTmpfs === undefined ? {} : { machineTmpfs }) };
    });
  }

  /** CONTRACT with apid: the container released its volumes (idempotent). */
  unmount(containerId: string, removeAnonymous: boolean): Promise<void> {
    return this.exclusive(async () => {
      const names = this.store.volumesOf(containerId);
      this.store.dropRefs(containerId);
      for (const name of names) {
        const v = this.store.get(name);
        if (!v || this.store.users(name).length) continue;
        // Docker's local driver unmounts option mounts when the last user goes.
        if (Object.keys(v.options).length && isMountpoint(dataDir(this.root, name))) await unmount(dataDir(this.root, name));
        if (removeAnonymous && v.anonymous) await this.destroy(name);
      }
    });
  }

  private view(v: VolumeRecord, users = this.store.users(v.name)): VolumeView {
    return { ...v, mountpoint: this.dataOf(v).path(v.name), inUseBy: users, sizeBytes: -1 };
  }
}

/**
 * VM mode: a type=tmpfs volume is the engine machine's to mount (its containers run
 * there, and a host tmpfs would reach them as a VirtioFS directory, not a tmpfs): the
 * machine mounts it at the source's path with these options and unmounts it when its
 * last container is gone (guest/vm/volume-tmpfs.ts). undefined: mounted here as usual.
 */
function machineTmpfsOf(v: VolumeRecord): string | undefined {
  return engineMode() === "vm" && v.options.type === "tmpfs" ? (v.options.o ?? "") : undefined;
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}
