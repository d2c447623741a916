/** `arcbox`: a thin command-line wrapper over the supervisor and the Connect API. */
import { arcboxHome } from "../lib/home.ts";
import { parseHomeFlag } from "../lib/service/argv.ts";
import { ARCBOX_VERSION } from "../lib/version.ts";

const usage = `arcbox ${ARCBOX_VERSION}: containers and Linux machines, Docker-compatible

Usage: arcbox [--home DIR] COMMAND

Commands:
  daemon            run the supervisor and its services in the foreground
  start [--vm]      start the daemon in the background; returns when the Docker socket answers
                    (--vm: run every container inside the engine machine, a Linux VM)
  stop              stop the daemon and every service, in order
  status            show the daemon and its services
  logs [SERVICE]    show logs (supervisor, apid, imaged, netd, fsd, vmm); -f to follow
  machine ...       Linux machines (VMs): create, start, stop, rm, ls, exec, shell, logs, mount
  docker enable     create the docker context "arcbox" pointing at ArcBox's socket
  docker disable    remove the docker context "arcbox"
  version           print the version

Home: --home DIR, else $ARCBOX_HOME, else /var/lib/arcbox (root) or ~/.arcbox.
`;

function stripHome(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--home") i++;
    else if (!argv[i]!.startsWith("--home=")) out.push(argv[i]!);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const homeDir = parseHomeFlag(argv);
  const home = arcboxHome(homeDir);
  const [cmd, ...rest] = stripHome(argv);
  switch (cmd) {
    // Commands load their modules on demand: `arcbox start` stays quick to launch.
    case "daemon":
      return (await import("../services/supervisor/main.ts")).runDaemon(homeDir);
    case "start":
      return (await import("./commands/start.ts")).start(home, { vm: rest.includes("--vm") });
    case "stop":
      return (await import("./commands/lifecycle.ts")).stop(home);
    case "status":
      return (await import("./commands/lifecycle.ts")).status(home);
    case "logs":
      return (await import("./commands/logs.ts")).logs(home, rest);
    case "machine":
    case "machines":
      return (await import("./commands/machine.ts")).machine(home, rest);
    case "docker":
      return (await import("./commands/docker-context.ts")).dockerContext(home, rest);
    case "version":
    case "--version":
      console.log(`arcbox ${ARCBOX_VERSION} (bun ${Bun.version})`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`arcbox: unknown command '${cmd}'\n\n${usage}`);
      return 2;
  }
}

// No top-level await: the bundle carries JSC bytecode (scripts/build.sh), which needs a
// CommonJS-shaped entry.
void main(process.argv.slice(2)).then((code) => {
  if (code !== undefined) process.exit(code);
});
