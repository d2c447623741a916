/**
 * apid's view of the other services (imaged, netd, fsd, vmm): typed calls whose
 * failures come back as ArcboxError, so core code never sees transport errors.
 */
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { ServiceClients } from "../../../lib/service/clients.ts";

export async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromConnectError(err);
  }
}

/** Cleanup calls: "not found" means already gone, which is what we wanted. */
export async function callIdempotent(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const e = fromConnectError(err);
    if (e.code !== "not_found") throw e;
  }
}

export type Backends = ServiceClients;
