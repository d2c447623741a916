/**
 * The services the supervisor manages, in start order. `lazy` services start on
 * first use (a client asks the supervisor to activate them); they are stopped in
 * reverse order, so apid stops taking requests before the services behind it go.
 */
import { join } from "node:path";
import { REPO_ROOT, resolveEntry } from "../../../lib/entry.ts";

export interface ServiceSpec {
  name: string;
  readonly entry: string;
  lazy: boolean;
}

const servicesDir = join(REPO_ROOT, "services");
// The entry is resolved when the service is spawned, not at import: checking whether
// the bundle is current walks the source tree.
const spec = (name: string, lazy: boolean): ServiceSpec => ({
  name,
  lazy,
  get entry() {
    return resolveEntry(name, join(servicesDir, name, "main.ts"));
  },
});

export const SERVICE_TABLE: ServiceSpec[] = [spec("imaged", true), spec("fsd", true), spec("netd", true), spec("vmm", true), spec("apid", false)];
