/**
 * netd's persistent state (SQLite under netd's dataDir), loaded whole at start and
 * written through on every change: networks, endpoints, attachments and endpoints
 * waiting for a container's next Attach.
 *
 * Schema v1:
 *   networks(id PK, name UNIQUE, doc JSON)
 *   endpoints(container_id, network_id, doc JSON, PK(container_id, network_id))
 *   attachments(container_id PK, doc JSON)
 *   pending(container_id, network, doc JSON, PK(container_id, network))
 * Schema v2 adds:
 *   machines(name PK, doc JSON)            one lease per attached machine
 *   machine_net(id PK = 1, doc JSON)       the machine bridge, while machines exist
 */
import { Database } from "bun:sqlite";
import { join } from "node:path";
import type { AttachmentRecord, EndpointRecord, MachineLeaseRecord, MachineNetRecord, NetworkRecord, PendingEndpoint } from "../core/model.ts";

const SCHEMA_VERSION = 2;

export class NetStore {
  private readonly db: Database;

  constructor(dataDir: string) {
    this.db = new Database(join(dataDir, "netd.db"), { create: true, strict: true });
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    const version = (this.db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version === 0) {
      this.db.exec(`
        CREATE TABLE networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
        CREATE TABLE endpoints (container_id TEXT NOT NULL, network_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (container_id, network_id));
        CREATE TABLE attachments (container_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE pending (container_id TEXT NOT NULL, network TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (container_id, network));
      `);
    }
    if (version < 2) {
      this.db.exec(`
        CREATE TABLE machines (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE machine_net (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);
      `);
    }
    if (version < SCHEMA_VERSION) this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  networks(): NetworkRecord[] {
    return this.all("SELECT doc FROM networks");
  }
  putNetwork(n: NetworkRecord): void {
    this.db.query("INSERT OR REPLACE INTO networks (id, name, doc) VALUES (?, ?, ?)").run(n.id, n.name, JSON.stringify(n));
  }
  deleteNetwork(id: string): void {
    this.db.query("DELETE FROM networks WHERE id = ?").run(id);
  }

  endpoints(): EndpointRecord[] {
    return this.all("SELECT doc FROM endpoints");
  }
  putEndpoint(e: EndpointRecord): void {
    this.db.query("INSERT OR REPLACE INTO endpoints (container_id, network_id, doc) VALUES (?, ?, ?)").run(e.containerId, e.networkId, JSON.stringify(e));
  }
  deleteEndpoint(containerId: string, networkId: string): void {
    this.db.query("DELETE FROM endpoints WHERE container_id = ? AND network_id = ?").run(containerId, networkId);
  }

  attachments(): AttachmentRecord[] {
    return this.all("SELECT doc FROM attachments");
  }
  putAttachment(a: AttachmentRecord): void {
    this.db.query("INSERT OR REPLACE INTO attachments (container_id, doc) VALUES (?, ?)").run(a.containerId, JSON.stringify(a));
  }
  deleteAttachment(containerId: string): void {
    this.db.query("DELETE FROM attachments WHERE container_id = ?").run(containerId);
  }

  pending(containerId: string): PendingEndpoint[] {
    return this.db
      .query("SELECT doc FROM pending WHERE container_id = ?")
      .all(containerId)
      .map((r) => JSON.parse((r as { doc: string }).doc));
  }
  putPending(containerId: string, p: PendingEndpoint): void {
    this.db.query("INSERT OR REPLACE INTO pending (container_id, network, doc) VALUES (?, ?, ?)").run(containerId, p.network, JSON.stringify(p));
  }
  deletePending(containerId: string, network?: string): void {
    if (network === undefined) this.db.query("DELETE FROM pending WHERE container_id = ?").run(containerId);
    else this.db.query("DELETE FROM pending WHERE container_id = ? AND network = ?").run(containerId, network);
  }

  machines(): MachineLeaseRecord[] {
    return this.all("SELECT doc FROM machines");
  }
  putMachine(m: MachineLeaseRecord): void {
    this.db.query("INSERT OR REPLACE INTO machines (name, doc) VALUES (?, ?)").run(m.machine, JSON.stringify(m));
  }
  deleteMachine(name: string): void {
    this.db.query("DELETE FROM machines WHERE name = ?").run(name);
  }
  machineNet(): MachineNetRecord | undefined {
    return this.all<MachineNetRecord>("SELECT doc FROM machine_net")[0];
  }
  setMachineNet(n: MachineNetRecord | undefined): void {
    if (n) this.db.query("INSERT OR REPLACE INTO machine_net (id, doc) VALUES (1, ?)").run(JSON.stringify(n));
    else this.db.query("DELETE FROM machine_net").run();
  }

  close(): void {
    this.db.close();
  }

  private all<T>(sql: string): T[] {
    return this.db
      .query(sql)
      .all()
      .map((r) => JSON.parse((r as { doc: string }).doc) as T);
  }
}
