# ArcBox machine boot: mount the machine's VirtioFS shares (busybox sh, run by stage2.sh
# before the agent starts, so a first exec already sees them). vmm lists them on the
# kernel command line as arcbox.mounts=TAG:DIR[:ro],... with DIR's unusual bytes as %XX
# (guest/boot/mounts-arg.ts); each is mounted at DIR, made if missing. A share that does
# not mount is reported on the console; the machine boots on without it.
bb=/opt/arcbox/bin/busybox
list=
for w in $($bb cat /proc/cmdline); do
  case $w in arcbox.mounts=*) list=${w#*=} ;; esac
done
[ -n "$list" ] || exit 0
# stage 2 loads these in the background too; insmod of a module being loaded waits for it.
for ko in fuse virtiofs; do $bb insmod "/opt/arcbox/modules/$ko.ko" 2>/dev/null; done

IFS=,
for entry in $list; do
  IFS=:
  # shellcheck disable=SC2086 # split TAG:DIR[:ro] on ':' (DIR holds no ':' once encoded)
  set -- $entry
  IFS=,
  tag=$1
  dir=$($bb printf '%b' "$(echo "$2" | $bb sed 's/%/\\x/g')")
  opts=rw
  [ "$3" = ro ] && opts=ro
  $bb mkdir -p "$dir" || { echo "arcbox: cannot make $dir for share $tag" >&2; continue; }
  n=0
  # The device may still be probing right after the module loaded: retry briefly.
  until $bb mount -t virtiofs -o "$opts" "$tag" "$dir" 2>/dev/null; do
    n=$((n + 1))
    if [ $n -ge 20 ]; then
      echo "arcbox: cannot mount share $tag at $dir: $($bb mount -t virtiofs -o "$opts" "$tag" "$dir" 2>&1)" >&2
      break
    fi
    $bb usleep 100000
  done
done
exit 0
