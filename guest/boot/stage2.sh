# ArcBox machine boot, stage 2 (busybox sh, in the machine's root, under arcbox-init as PID 1):
# the rest of the system set-up, then the guest agent, restarted if it ever exits.
# The machine powers off through the agent (Poweroff: sync, remount read-only, reboot(2)).
export PATH=/opt/arcbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp
bb=/opt/arcbox/bin/busybox
# PID 1 (arcbox-init --machine-setup, native/init/machine-setup.c) has mounted devpts,
# /dev/shm, /run, /tmp and cgroup2, linked /dev/virtio-ports/<name>, started the boot
# trace, set the idle sysctls and the hostname, brought lo up, mounted the machine's
# VirtioFS shares, made the agent's FIFO pair and started the serial relay, which
# answers the host: machine execs run from then on, and the rest waits in the relay for
# the agent started below (native/serial/). Each step was a fork and exec of busybox
# here, ~50 ms apiece under TCG. What is left forks as little as it can (shell
# builtins; a `read` of /proc/cmdline instead of `$(cat ...)`).
read -r cmdline < /proc/cmdline
name= accel= role=
for w in $cmdline; do
  case $w in arcbox.name=*) name=${w#*=} ;; arcbox.accel=*) accel=${w#*=} ;; arcbox.role=*) role=${w#*=} ;; esac
done
# The boot trace (/init's marks, then ours and the agent's): `machine exec -- cat` it.
mark() { read -r up _ < /proc/uptime; echo "$up $1" >> "$ARCBOX_BOOT_TRACE_FILE"; }
# The modules not needed to reach the host (network, balloon, overlay, fuse/virtiofs,
# vsock) and DHCP from netd, in the background. The host is answered already, so the
# network comes first, at normal priority: virtio_net (the first of them), then udhcpc at
# once; the other modules follow at nice 19 (on one vCPU the agent's start goes first).
# Without an answer after a few tries udhcpc gives up (-n) and the machine runs without
# network; with a lease it stays to renew it.
$bb sh -c '
  while read -r ko; do
    '"$bb"' insmod "/opt/arcbox/modules/$ko" 2>/dev/null
    [ "$ko" = virtio_net.ko ] || continue
    [ -e /sys/class/net/eth0 ] && '"$bb"' udhcpc -i eth0 -f -n -t 4 -T 1 -s /opt/arcbox/boot/udhcpc.sh '"${name:+-x hostname:$name}"' &
    '"$bb"' renice -n 19 -p $$ >/dev/null # (busybox has no nice applet)
  done < /opt/arcbox/modules/load-order
  # Free page reporting granularity from vmm (4 KiB-backed RAM: order 0). Linux 6.1
  # resets the parameter to 2 MiB blocks when virtio_balloon registers: set it again.
  for w in $('"$bb"' cat /proc/cmdline); do case $w in page_reporting.page_reporting_order=*)
    echo "${w#*=}" > /sys/module/page_reporting/parameters/page_reporting_order;; esac; done
  # The engine machine runs networked containers: their modules (bridge, veth, netfilter)
  # now, while the vCPU is idle, not in the first `docker run` (network commands in the
  # relay, native/serial/netcmd.c, skip their own loading when the marker is there).
  if [ "'"$role"'" = engine ]; then
    while read -r ko; do '"$bb"' insmod "/opt/arcbox/modules/net/$ko"; done < /opt/arcbox/modules/net/load-order
    echo 1 > /proc/sys/net/ipv4/ip_forward && : > /run/arcbox/net-modules-loaded
  fi
' >/dev/null 2>&1 &

agent_port=/dev/virtio-ports/org.arcbox.agent.0
# The agent's Bun (guest/README.md, "Start-up costs"):
# - under TCG (arcbox.accel=tcg from vmm) JavaScriptCore's JIT tiers cost more than they
#   save: each compiler runs for the first time in this qemu (its code is translated
#   first), and each piece of JIT output is translated again. The interpreter starts the
#   agent ~35% sooner, and the agent's work is I/O glue;
#   Without the JIT bun:ffi refuses to load ("requires the JIT"): the agent must not use it
#   in a VM (with --serial it takes no home lock, its only bun:ffi use);
# - fewer idle wake-ups: no GC timer (Bun collects as it allocates) and no mimalloc
#   scavenger thread (it woke after each of Bun's socket-timer ticks, ~1.3 a second while
#   the host is connected; freed memory stays with the agent instead of going back);
# - msgpackr would probe for its native add-on, which the tools image does not have;
# - lib/log.ts need not create process.stderr/stdout's Node streams (~0.4 s under TCG)
#   for an error guard: the agent writes its log with writeSync and nothing else uses them.
[ "$accel" = tcg ] && export BUN_JSC_useJIT=0
export BUN_GC_TIMER_DISABLE=1 MIMALLOC_PURGE_DELAY=-1 MSGPACKR_NATIVE_ACCELERATION_DISABLED=true ARCBOX_LOG_STDIO_GUARD=0
# The agent starts at nice 10 (this shell's, from here on) and takes nice 0 once it
# serves: on one vCPU its 3-4 s of start-up would otherwise halve the CPU of the first
# machine execs the relay runs meanwhile and of the network's start (busybox has no nice
# applet). Not in the engine machine, which is ready for `docker run` only once its agent
# serves.
[ "$role" = engine ] || renice -n 10 -p $$ >/dev/null
while :; do
  mark agent-spawn
  # --no-install: never try to fetch a package from npm (msgpackr probes an optional one).
  /opt/arcbox/bin/bun --smol --no-install /opt/arcbox/dist/guest-agent.js --home /var/lib/arcbox --serial "$agent_port"
  echo "arcbox: guest agent exited ($?); restarting in 1 s" >&2
  $bb sleep 1
done
