/** `arcbox docker enable | disable`: manages the docker CLI context named "arcbox". */
import { dockerSocket, type ArcboxHome } from "../../lib/home.ts";

export const CONTEXT_NAME = "arcbox";

function docker(args: string[]) {
  const p = Bun.spawnSync(["docker", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return { code: p.exitCode, out: p.stdout.toString().trim(), err: p.stderr.toString().trim() };
}

export async function dockerContext(home: ArcboxHome, args: string[]): Promise<number> {
  const host = `host=unix://${dockerSocket(home)}`;
  switch (args[0]) {
    case "enable": {
      const exists = docker(["context", "inspect", CONTEXT_NAME]).code === 0;
      const r = exists
        ? docker(["context", "update", CONTEXT_NAME, "--docker", host, "--description", "ArcBox"])
        : docker(["context", "create", CONTEXT_NAME, "--docker", host, "--description", "ArcBox"]);
      if (r.code !== 0) {
        process.stderr.write(`arcbox: docker context ${exists ? "update" : "create"} failed: ${r.err}\n`);
        return 1;
      }
      console.log(`docker context '${CONTEXT_NAME}' points at unix://${dockerSocket(home)}; use it with: docker context use ${CONTEXT_NAME}`);
      return 0;
    }
    case "disable": {
      if (docker(["context", "inspect", CONTEXT_NAME]).code !== 0) {
        console.log(`docker context '${CONTEXT_NAME}' does not exist`);
        return 0;
      }
      if (docker(["context", "show"]).out === CONTEXT_NAME) docker(["context", "use", "default"]);
      const r = docker(["context", "rm", "-f", CONTEXT_NAME]);
      if (r.code !== 0) {
        process.stderr.write(`arcbox: docker context rm failed: ${r.err}\n`);
        return 1;
      }
      console.log(`docker context '${CONTEXT_NAME}' removed`);
      return 0;
    }
    default:
      process.stderr.write("usage: arcbox docker enable|disable\n");
      return 2;
  }
}
