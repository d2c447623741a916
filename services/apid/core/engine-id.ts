/** The engine ID shown by `docker info`: generated once, then read from apid's data dir. */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function loadEngineId(dataDir: string): string {
  const file = join(dataDir, "engine-id");
  if (existsSync(file)) {
    const id = readFileSync(file, "utf8").trim();
    if (id) return id;
  }
  const id = crypto.randomUUID().toUpperCase();
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}
