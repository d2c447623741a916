# ArcBox machine boot, stage 2 (busybox sh, in the machine's root, under arcbox-init as PID 1):
# the rest of the system set-up, then the guest agent, restarted if it ever exits.
# The machine powers off through the agent (Poweroff: sync, remount read-only, reboot(2)).
export PATH=/opt/arcbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp
bb=/opt/arcbox/bin/busybox
arg() { # value of arcbox.<name>= on the kernel command line
  for w in $(cat /proc/cmdline); do case $w in "arcbox.$1="*) echo "${w#*=}"; return ;; esac; done
}

$bb mkdir -p /dev/pts /dev/shm /run /tmp /sys/fs/cgroup /dev/virtio-ports
$bb mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
[ -e /dev/ptmx ] || $bb ln -sf pts/ptmx /dev/ptmx
$bb mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
$bb mount -t tmpfs -o mode=0755,nosuid,nodev run /run
$bb mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
# The boot trace (/init's marks, then ours and the agent's): `machine exec -- cat` it.
mark() { read -r up _ < /proc/uptime; echo "$up $1" >> /run/arcbox/boot-trace; }
$bb mkdir -p /run/arcbox
IFS=';'
for m in $ARCBOX_BOOT_TRACE; do echo "$m"; done > /run/arcbox/boot-trace
unset IFS ARCBOX_BOOT_TRACE
mark stage2
export ARCBOX_BOOT_TRACE_FILE=/run/arcbox/boot-trace
$bb mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# No udev: name the virtio-serial ports as udev would (/dev/virtio-ports/<name>).
for p in /sys/class/virtio-ports/*; do
  [ -r "$p/name" ] && $bb ln -sf "../${p##*/}" "/dev/virtio-ports/$($bb cat "$p/name")"
done

# Idle wake-ups: no proactive compaction (kcompactd would wake twice a second) and the
# per-CPU VM counters folded every 10 s instead of every second. Free page reporting
# (virtio_balloon) does not depend on either.
echo 0 > /proc/sys/vm/compaction_proactiveness 2>/dev/null
echo 10 > /proc/sys/vm/stat_interval 2>/dev/null
name=$(arg name)
role=$(arg role)
[ -n "$name" ] && $bb hostname "$name"
$bb ip link set lo up
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
' >/dev/null 2>&1 &

$bb sh /opt/arcbox/boot/mounts.sh # the machine's VirtioFS shares, before the host is answered

# The serial relay answers the host now: it runs machine execs itself, and queues the
# rest for the agent until the agent is up (native/serial/arcbox-serial-relay.c). It
# outlives agent restarts; restarted itself if it exits (the host then re-SYNCs).
agent_port=/dev/virtio-ports/org.arcbox.agent.0
agent_run=/var/lib/arcbox/run
$bb mkdir -p -m 0700 /var/lib/arcbox "$agent_run"
for f in "$agent_run/guest-agent.in.fifo" "$agent_run/guest-agent.out.fifo"; do
  [ -p "$f" ] || { $bb rm -rf "$f"; $bb mkfifo -m 600 "$f"; }
done
while :; do
  /opt/arcbox/native/bin/arcbox-serial-relay "$agent_port" "$agent_run/guest-agent.in.fifo" "$agent_run/guest-agent.out.fifo" /run/arcbox/mexec /opt/arcbox/native/bin/arcbox-shim
  echo "arcbox: serial relay exited ($?); restarting in 1 s" >&2
  $bb sleep 1
done &

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
[ "$(arg accel)" = tcg ] && export BUN_JSC_useJIT=0
export BUN_GC_TIMER_DISABLE=1 MIMALLOC_PURGE_DELAY=-1 MSGPACKR_NATIVE_ACCELERATION_DISABLED=true ARCBOX_LOG_STDIO_GUARD=0
# The agent starts at nice 10 (this shell's, from here on) and takes nice 0 once it
# serves: on one vCPU its 3-4 s of start-up would otherwise halve the CPU of the first
# machine execs the relay runs meanwhile and of the network's start (busybox has no nice
# applet). Not in the engine machine, which is ready for `docker run` only once its agent
# serves.
[ "$role" = engine ] || $bb renice -n 10 -p $$ >/dev/null
while :; do
  mark agent-spawn
  # --no-install: never try to fetch a package from npm (msgpackr probes an optional one).
  /opt/arcbox/bin/bun --smol --no-install /opt/arcbox/dist/guest-agent.js --home /var/lib/arcbox --serial "$agent_port"
  echo "arcbox: guest agent exited ($?); restarting in 1 s" >&2
  $bb sleep 1
done
