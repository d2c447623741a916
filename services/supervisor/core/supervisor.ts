/** The supervisor's domain logic: which services run, activation, and orderly shutdown. */
import { ArcboxError } from "../../../lib/errors.ts";
import type { ArcboxHome } from "../../../lib/home.ts";
import type { Logger } from "../../../lib/log.ts";
import { ManagedService } from "./managed-service.ts";
import type { ServiceSpec } from "./service-table.ts";

export class Supervisor {
  readonly services: ManagedService[];
  private shuttingDown: Promise<void> | undefined;

  constructor(specs: ServiceSpec[], home: ArcboxHome, log: Logger) {
    this.services = specs.map((s) => new ManagedService(s, home, log, (name) => this.activate(name)));
  }

  /** Starts every eager service and resolves when all of them are ready. */
  async startEager(): Promise<void> {
    await Promise.all(this.services.filter((s) => !s.spec.lazy).map((s) => s.ensureRunning()));
  }

  async activate(name: string): Promise<ManagedService> {
    const svc = this.services.find((s) => s.spec.name === name);
    if (!svc) throw new ArcboxError("not_found", `no such service: ${name}`);
    if (this.shuttingDown) throw new ArcboxError("unavailable", "the daemon is shutting down");
    await svc.ensureRunning();
    return svc;
  }

  /** Stops services in reverse start order: apid first, so no new work arrives. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      for (const svc of [...this.services].reverse()) await svc.stop();
    })();
    return this.shuttingDown;
  }
}
