/** `arcbox logs [SERVICE] [-f]`: prints (or follows) the service logs under $ARCBOX_HOME/log. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { ArcboxHome } from "../../lib/home.ts";

export async function logs(home: ArcboxHome, args: string[]): Promise<number> {
  const follow = args.includes("-f") || args.includes("--follow");
  const service = args.find((a) => !a.startsWith("-"));
  const files = service
    ? [join(home.log, `${service}.log`)]
    : existsSync(home.log)
      ? readdirSync(home.log)
          .filter((f) => f.endsWith(".log"))
          .sort()
          .map((f) => join(home.log, f))
      : [];
  if (service && !existsSync(files[0]!)) {
    process.stderr.write(`arcbox: no log for '${service}' in ${home.log}\n`);
    return 1;
  }
  if (files.length === 0) return 0;
  const argv = ["tail", "-n", follow ? "200" : "+1", ...(follow ? ["-F"] : []), ...files];
  const proc = Bun.spawn(argv, { stdio: ["ignore", "inherit", "inherit"] });
  return await proc.exited;
}
