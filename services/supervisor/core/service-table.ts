/**
 * The services the supervisor manages, in start order. `lazy` services start on
 * first use (a client asks the supervisor to activate them); they are stopped in
 * reverse order, so apid stops taking requests before the services behind it go.
 */
import { join } from "node:path";
import { REPO_ROOT, resolveEntry } from "../../../lib/entry.ts";

export interface ServiceSpec {
  name: string;
  entry: string;
  lazy: boolean;
}

const servicesDir = join(REPO_ROOT, "services");
const entry = (name: string) => resolveEntry(name, join(servicesDir, name, "main.ts"));

export const SERVICE_TABLE: ServiceSpec[] = [
  { name: "imaged", entry: entry("imaged"), lazy: true },
  { name: "fsd", entry: entry("fsd"), lazy: true },
  { name: "netd", entry: entry("netd"), lazy: true },
  { name: "vmm", entry: entry("vmm"), lazy: true },
  { name: "apid", entry: entry("apid"), lazy: false },
];
