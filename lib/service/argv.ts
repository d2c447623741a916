/** `--home DIR` / `--home=DIR`, shared by the CLI and every service entry point. */
import { defaultHomeDir } from "../home.ts";

export function parseHomeFlag(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--home" && argv[i + 1]) return argv[i + 1]!;
    if (a.startsWith("--home=")) return a.slice("--home=".length);
  }
  return defaultHomeDir();
}
