/**
 * The machine shares fsd serves, on disk (data/fsd/shares.json) so a restarted fsd
 * re-adopts the servers still running for machines (qemu cannot reconnect to a new one).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

export const ShareRecordSchema = z.object({
  machine: z.string(),
  tag: z.string(),
  hostDir: z.string(),
  readOnly: z.boolean(),
  cacheMode: z.enum(["auto", "always", "never"]),
  socketPath: z.string(),
  statsPath: z.string(),
  watchPath: z.string(),
  logPath: z.string(),
  pid: z.number().int(),
});
export type ShareRecord = z.infer<typeof ShareRecordSchema>;

export class ShareStore {
  private readonly path: string;
  constructor(dataDir: string) {
    this.path = join(dataDir, "shares.json");
  }

  load(): ShareRecord[] {
    if (!existsSync(this.path)) return [];
    const parsed = z.array(ShareRecordSchema).safeParse(JSON.parse(readFileSync(this.path, "utf8")));
    return parsed.success ? parsed.data : [];
  }

  save(records: ShareRecord[]): void {
    writeFileSync(`${this.path}.tmp`, JSON.stringify(records, null, 1));
    renameSync(`${this.path}.tmp`, this.path);
  }
}
