/**
 * Watches which ports the machine listens on, without polling: kprobe events in the
 * kernel's tracefs fire when a TCP socket starts or stops listening, when a UDP socket
 * is bound or closed (and when an IPv4 address is added, for the loopback proxy's bind
 * address); a blocked reader of the tracing instance's trace_pipe wakes the agent only
 * then, and the agent re-reads /proc/net/{tcp,udp}{,6} once per burst. Idle, the
 * reader sleeps in read(2): no CPU.
 *
 * The probes live in a tracing instance of their own ("arcbox"), so the machine's
 * global trace buffer stays the user's. A reader left by an earlier agent (which died)
 * is killed first: two readers of one trace_pipe would split the events.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Logger } from "../../lib/log.ts";
import { toolPath } from "../platform/run-tool.ts";
import { listenPorts, parseListeners, parsePortRange, type Listener, type ListenPort } from "./listen-table.ts";

const TRACEFS = "/sys/kernel/tracing";
const INSTANCE = `${TRACEFS}/instances/arcbox`;
const TRACE_PIPE = `${INSTANCE}/trace_pipe`;
/** A return probe for listen: the socket is hashed (visible in /proc) when it fires. */
const PROBES: Array<{ name: string; def: string; optional?: boolean }> = [
  { name: "arcbox_listen", def: "r:arcbox_listen inet_csk_listen_start" },
  { name: "arcbox_unlisten", def: "p:arcbox_unlisten inet_csk_listen_stop" },
  { name: "arcbox_ifaddr", def: "r:arcbox_ifaddr __inet_insert_ifa", optional: true },
  // UDP: a bind (or autobind) and a close. Every DNS lookup fires them too: one scan each.
  { name: "arcbox_udp_bind", def: "r:arcbox_udp_bind udp_lib_get_port", optional: true },
  { name: "arcbox_udp_unhash", def: "p:arcbox_udp_unhash udp_lib_unhash", optional: true },
];
/** Coalesces a burst of events (a server opening several sockets) into one scan. */
const DEBOUNCE_MS = 20;

export class PortWatch {
  private reader: ReturnType<typeof Bun.spawn> | undefined;
  private timer: Timer | undefined;
  private stopped = false;
  private backoffMs = 200;
  private cat = "cat";
  private current: ListenPort[] = [];
  /** Whether the kernel lets us watch; false means no ports are ever reported. */
  active = false;

  constructor(
    private readonly log: Logger,
    /** Called after each scan triggered by an event (the owner compares). */
    private readonly onScan: (ports: ListenPort[]) => void,
    /** Listeners that are not the user's (the agent's proxies). */
    private readonly ignore: (l: Listener) => boolean = () => false,
  ) {}

  get ports(): ListenPort[] {
    return this.current;
  }

  /** Sets the probes up and starts the reader; false (logged) if the kernel cannot. */
  async start(): Promise<boolean> {
    try {
      // The tools image's busybox comes first on stage 2's PATH: any root image works.
      this.cat = toolPath("cat");
      await setUpProbes(toolPath("sh"));
    } catch (err) {
      this.log.warn("cannot watch listening ports: no automatic port forwarding", { error: (err as Error).message });
      return false;
    }
    killStaleReaders();
    this.active = true;
    this.spawnReader();
    this.current = this.scan();
    return true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.reader?.kill();
  }

  /** Re-reads the listeners soon. */
  rescanSoon(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.current = this.scan();
      this.onScan(this.current);
    }, DEBOUNCE_MS);
  }

  private scan(): ListenPort[] {
    const read = (p: string) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return "";
      }
    };
    const ephemeral = parsePortRange(read("/proc/sys/net/ipv4/ip_local_port_range"));
    return listenPorts(
      [
        ...parseListeners(read("/proc/net/tcp"), false),
        ...parseListeners(read("/proc/net/tcp6"), true),
        ...parseListeners(read("/proc/net/udp"), false, "udp", ephemeral),
        ...parseListeners(read("/proc/net/udp6"), true, "udp", ephemeral),
      ],
      this.ignore,
    );
  }

  private spawnReader(): void {
    const startedAt = Date.now();
    const proc = Bun.spawn([this.cat, TRACE_PIPE], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    this.reader = proc;
    void (async () => {
      // Each chunk is one or more trace lines; their content does not matter.
      for await (const _ of proc.stdout) this.rescanSoon();
    })().catch(() => {});
    void proc.exited.then((code) => {
      if (this.stopped) return;
      this.backoffMs = Date.now() - startedAt > 10_000 ? 200 : Math.min(this.backoffMs * 2, 10_000);
      this.log.warn("trace_pipe reader exited; restarting", { code, inMs: this.backoffMs });
      setTimeout(() => {
        this.spawnReader();
        this.rescanSoon();
      }, this.backoffMs);
    });
  }
}

/**
 * Mounts tracefs, defines the probes and enables them in our instance, in a child shell
 * at nice 19: the kernel's side (trace events, the instance's buffers, patching the
 * probed code, which under TCG throws away translated code) takes ~1-2 s of a TCG
 * vCPU, and vmm asks for the ports as soon as a machine's agent answers, i.e. just when
 * the boot's first `machine exec` arrives: that exec (and the agent's event loop) comes
 * first. An agent that ran before in this boot left the probes (and the instance) in place.
 */
const SET_UP_PROBES = `
renice -n 19 -p $$ >/dev/null
T=${TRACEFS}
I=${INSTANCE}
[ -e $T/kprobe_events ] || mount -t tracefs nodev $T || true
[ -e $T/kprobe_events ] || { echo "cannot mount tracefs with kprobe events" >&2; exit 1; }
define() {
  while [ $# -gt 0 ]; do
    name=$1 optional=$2 def=$3; shift 3
    grep -q "kprobes/$name " $T/kprobe_events && continue
    echo "$def" >> $T/kprobe_events 2>/dev/null || [ "$optional" = 1 ] || { echo "cannot add kprobe: $def" >&2; exit 1; }
  done
}
enable() {
  while [ $# -gt 0 ]; do
    name=$1 optional=$2; shift 3
    if [ -e $I/events/kprobes/$name/enable ]; then echo 1 > $I/events/kprobes/$name/enable || exit 1
    elif [ "$optional" != 1 ]; then echo "kprobe event $name is missing in $I" >&2; exit 1
    fi
  done
}
define "$@"
mkdir -p $I
enable "$@"
`;

async function setUpProbes(sh: string): Promise<void> {
  const args = PROBES.flatMap((p) => [p.name, p.optional ? "1" : "0", p.def]);
  const proc = Bun.spawn([sh, "-c", SET_UP_PROBES, "arcbox-probes", ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(stderr.trim() || `probe set-up exited with ${code}`);
}

/** Ends readers of our trace_pipe left by an earlier agent of this boot. */
function killStaleReaders(): void {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (argv[1] === TRACE_PIPE) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {}
    }
  }
}
