#!/usr/bin/env bash
# Builds the small guest the VirtioFS tests and bench boot: Debian's cloud kernel
# (apt-get download + dpkg-deb -x, never installed on the host) and an initramfs with
# busybox, the virtio-mmio/fuse/virtiofs modules, a static probe for syscalls busybox
# lacks (mmap, xattrs, fsync) and an /init that mounts /proc, /sys, /dev, loads the
# modules and runs /test.sh (appended per run as a second cpio archive).
# Usage: build-guest.sh <cache dir>; prints "<kernel> <initramfs> <probe>". Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
resolve_kernel() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
if [ ! -s "$out/kernel-package" ]; then
  kpkg=$(resolve_kernel)
  [ -n "$kpkg" ] || { apt-get update -qq >&2; kpkg=$(resolve_kernel); }
  [ -n "$kpkg" ] || { echo "cannot resolve linux-image-cloud-amd64's kernel package" >&2; exit 1; }
  echo "$kpkg" > "$out/kernel-package"
fi
kpkg=$(cat "$out/kernel-package")
krel=${kpkg#linux-image-}
kroot=$out/$kpkg
if [ ! -f "$kroot/boot/vmlinuz-$krel" ]; then
  rm -rf "$kroot" "$out/dl" && mkdir -p "$out/dl"
  (cd "$out/dl" && apt-get download -q "$kpkg" >&2 2>/dev/null || apt-get download "$kpkg" >&2)
  mkdir -p "$kroot.tmp" && dpkg-deb -x "$out"/dl/"$kpkg"_*.deb "$kroot.tmp"
  busybox depmod -b "$kroot.tmp" "$krel"
  rm -rf "$out/dl" && mv "$kroot.tmp" "$kroot"
fi
kmods=$kroot/lib/modules/$krel
img=$out/initramfs.img
if [ ! -f "$img" ] || [ -n "$(find "$here" /bin/busybox -newer "$img" -print -quit)" ]; then
  stage=$out/stage
  rm -rf "$stage" && mkdir -p "$stage"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
  cp /bin/busybox "$stage/bin/busybox"
  for a in $(busybox --list); do [ -e "$stage/bin/$a" ] || ln -s busybox "$stage/bin/$a"; done
  declare -A dep_of=() seen=()
  while IFS=: read -r mod deps; do dep_of[$mod]=$deps; done < "$kmods/modules.dep"
  order=()
  add() { local m=$1 d; [ -n "${seen[$m]:-}" ] && return 0; seen[$m]=1; for d in ${dep_of[$m]}; do add "$d"; done; order+=("$m"); }
  for name in virtio_mmio fuse virtiofs; do
    path=$(grep -m1 -E "(^|/)$name\.ko(\.[a-z]+)?:" "$kmods/modules.dep" | cut -d: -f1 || true)
    [ -n "$path" ] && add "$path"   # absent means built in
  done
  for m in "${order[@]}"; do cp "$kmods/$m" "$stage/lib/modules/"; basename "$m"; done > "$stage/lib/modules/order"
  cc -O2 -static -o "$out/probe" "$here/probe.c"   # also run on the host side of the tests
  cp "$out/probe" "$stage/bin/probe"
  cc -O2 -Wall -o "$out/frontend" "$here/frontend.c"  # host only: a vhost-user front-end for protocol tests
  install -m 0755 "$here/init" "$stage/init"
  (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) > "$img.tmp"
  mv "$img.tmp" "$img"
  rm -rf "$stage"
fi
echo "$kroot/boot/vmlinuz-$krel $img $out/probe"
