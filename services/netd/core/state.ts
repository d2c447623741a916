/**
 * netd's in-memory view of its records, written through to the store; plus the one
 * lock that serialises every change (kernel objects and records stay in step).
 */
import type { NetStore } from "../storage/net-store.ts";
import type { AttachmentRecord, EndpointRecord, MachineLeaseRecord, MachineNetRecord, NetworkRecord } from "./model.ts";
import { NetworkError } from "./network-error.ts";

export class NetState {
  readonly networks = new Map<string, NetworkRecord>();
  /** key: `${containerId}/${networkId}` */
  readonly endpoints = new Map<string, EndpointRecord>();
  readonly attachments = new Map<string, AttachmentRecord>();
  /** key: machine name */
  readonly machines = new Map<string, MachineLeaseRecord>();
  machineNet: MachineNetRecord | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly store: NetStore) {
    for (const n of store.networks()) this.networks.set(n.id, n);
    for (const e of store.endpoints()) this.endpoints.set(`${e.containerId}/${e.networkId}`, e);
    for (const a of store.attachments()) this.attachments.set(a.containerId, a);
    for (const m of store.machines()) this.machines.set(m.machine, m);
    this.machineNet = store.machineNet();
  }

  /** Runs `fn` after every earlier change has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  transaction<T>(fn: () => T): T {
    return this.store.transaction(fn);
  }

  putNetwork(n: NetworkRecord): void {
    this.store.putNetwork(n);
    this.networks.set(n.id, n);
  }
  deleteNetwork(id: string): void {
    this.store.deleteNetwork(id);
    this.networks.delete(id);
  }
  putEndpoint(e: EndpointRecord): void {
    this.store.putEndpoint(e);
    this.endpoints.set(`${e.containerId}/${e.networkId}`, e);
  }
  deleteEndpoint(containerId: string, networkId: string): void {
    this.store.deleteEndpoint(containerId, networkId);
    this.endpoints.delete(`${containerId}/${networkId}`);
  }
  putAttachment(a: AttachmentRecord): void {
    this.store.putAttachment(a);
    this.attachments.set(a.containerId, a);
  }
  deleteAttachment(id: string): void {
    this.store.deleteAttachment(id);
    this.attachments.delete(id);
  }

  putMachine(m: MachineLeaseRecord): void {
    this.store.putMachine(m);
    this.machines.set(m.machine, m);
  }
  deleteMachine(name: string): void {
    this.store.deleteMachine(name);
    this.machines.delete(name);
  }
  setMachineNet(n: MachineNetRecord | undefined): void {
    this.store.setMachineNet(n);
    this.machineNet = n;
  }

  endpointsOf(containerId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.containerId === containerId).sort((a, b) => a.ifname.localeCompare(b.ifname, "en", { numeric: true }));
  }
  endpointsIn(networkId: string): EndpointRecord[] {
    return [...this.endpoints.values()].filter((e) => e.networkId === networkId);
  }

  /** Docker's lookup order: exact ID, exact name, unique ID prefix. */
  findNetwork(ref: string): NetworkRecord | undefined {
    const byId = this.networks.get(ref);
    if (byId) return byId;
    for (const n of this.networks.values()) if (n.name === ref) return n;
    const matches = [...this.networks.values()].filter((n) => ref.length > 0 && n.id.startsWith(ref));
    if (matches.length > 1) throw new NetworkError("invalid_argument", `network ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
    return matches[0];
  }

  getNetwork(ref: string): NetworkRecord {
    const n = this.findNetwork(ref);
    if (!n) throw new NetworkError("not_found", `network ${ref} not found`);
    return n;
  }

  /** A container by full ID, unique ID prefix or name. */
  findAttachment(ref: string): AttachmentRecord | undefined {
    const a = this.attachments.get(ref);
    if (a) return a;
    const name = ref.replace(/^\//, "");
    for (const x of this.attachments.values()) if (x.containerName === name) return x;
    const matches = [...this.attachments.values()].filter((x) => x.containerId.startsWith(ref));
    return matches.length === 1 ? matches[0] : undefined;
  }
}
