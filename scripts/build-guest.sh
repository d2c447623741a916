#!/usr/bin/env bash
# Builds a machine's guest pieces into build/guest/ (see docs/architecture.md, "Machines"):
#   vmlinuz         Debian's linux-image-cloud-amd64 kernel (apt-get download + dpkg-deb -x;
#                   never installed on the host)
#   initramfs.img   /init (static C, native/initramfs/) and the kernel modules it loads
#   tools.img       read-only squashfs mounted at /opt/arcbox in the guest: Bun and its
#                   shared libs, the agent bundle, runc, crun (the machine's runtime:
#                   C, no Go start under TCG), arcbox-shim, arcbox-rootfs-cp,
#                   arcbox-init (PID 1, with the serial relay linked in) and busybox
#   manifest.json   {"kernelRelease": ..., "builtAt": ...}
# Idempotent and quick when up to date: each artifact is rebuilt only when an input is
# newer than it. Needs root only for apt-get download's cache when run by install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/guest
CACHE=$OUT/cache
mkdir -p "$CACHE"
SELF=scripts/build-guest.sh

# --- kernel: resolve the versioned package behind the metapackage -----------------------
# apt-cache takes seconds (no pkgcache.bin on Debian's container images): the answer is
# kept until the package lists change.
resolve_kernel() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
kpkg=
if [ -s "$CACHE/kernel-package" ] && [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newer "$CACHE/kernel-package" -print -quit 2>/dev/null)" ]; then
  kpkg=$(cat "$CACHE/kernel-package")
fi
[ -n "$kpkg" ] || kpkg=$(resolve_kernel)
if [ -z "$kpkg" ]; then
  apt-get update -qq
  kpkg=$(resolve_kernel)
fi
[ -n "$kpkg" ] || { echo "build-guest: cannot resolve linux-image-cloud-amd64's kernel package" >&2; exit 1; }
echo "$kpkg" > "$CACHE/kernel-package.tmp" && mv "$CACHE/kernel-package.tmp" "$CACHE/kernel-package"
krel=${kpkg#linux-image-}
kroot=$CACHE/$kpkg
if [ ! -f "$kroot/boot/vmlinuz-$krel" ]; then
  echo "build-guest: fetching $kpkg"
  rm -rf "$kroot" "$CACHE"/dl && mkdir -p "$CACHE/dl"
  # apt's sandbox user cannot write here; the download then runs as root, which is fine.
  (cd "$CACHE/dl" && apt-get download -q "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  deb=$(ls "$CACHE"/dl/"$kpkg"_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { echo "build-guest: apt-get download $kpkg failed" >&2; exit 1; }
  mkdir -p "$kroot.tmp" && dpkg-deb -x "$deb" "$kroot.tmp"
  # The package ships no modules.dep (depmod runs at install time): make one.
  busybox depmod -b "$PWD/$kroot.tmp" "$krel"
  rm -rf "$CACHE/dl" && mv "$kroot.tmp" "$kroot"
fi
kmods=$kroot/lib/modules/$krel

# stale <out> <inputs...>: true when <out> is missing or an input is newer than it.
stale() {
  local out=$1; shift
  [ ! -e "$out" ] || [ -n "$(find "$@" -newer "$out" -print -quit 2>/dev/null)" ]
}

if stale "$OUT/vmlinuz" "$kroot/boot/vmlinuz-$krel"; then
  cp "$kroot/boot/vmlinuz-$krel" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
fi

# --- modules --------------------------------------------------------------------------------
# A machine's modules (ext4 and af_packet are built in) with their dependencies from
# modules.dep, in load order (insmod, no modprobe/depmod at boot). Only what mounting the
# disks and reaching the host needs is in the initramfs; the rest is in the tools image,
# loaded by stage 2 at low priority while the agent starts (on one TCG vCPU, every module
# loaded before the agent delays it).
BOOT_MODULES="virtio_mmio virtio_blk virtio_console squashfs"
LATE_MODULES="virtio_net virtio_balloon overlay fuse virtiofs loop vmw_vsock_virtio_transport"
# Container networking in the engine machine (VM mode): loaded at its boot by stage 2, or
# by the relay's first network command (native/serial/netcmd.c), with their whole closure.
NET_MODULES="bridge veth ip_tables iptable_nat iptable_filter xt_MASQUERADE xt_nat xt_conntrack xt_addrtype xt_tcpudp"
# iproute2's ip (busybox's has no netns, -batch or -j) and iptables (legacy: the guest's
# tables are ArcBox's alone, no nft modules needed) for the same.
IP_BIN=$(readlink -f /bin/ip)
XT_BIN=/usr/sbin/xtables-legacy-multi
CP_BIN=$(readlink -f /bin/cp)
XT_LIBDIR=/usr/lib/x86_64-linux-gnu/xtables
BUN_BIN=$(readlink -f "$(command -v bun)")
RUNC_BIN=$(readlink -f "$(command -v runc)")
CRUN_BIN=$(readlink -f "$(command -v crun)" 2>/dev/null || true)
[ -n "$CRUN_BIN" ] || { echo "build-guest: crun is not installed (scripts/packages.txt)" >&2; exit 1; }
TINI_BIN=/usr/bin/tini-static
GUEST_LIB=/opt/arcbox/lib
sources=$(find guest lib proto/gen native -name '*.ts' -newer "$OUT/tools.img" -print -quit 2>/dev/null || true)
need_initramfs=0 need_tools=0
stale "$OUT/initramfs.img" "$SELF" native/initramfs "$kmods/modules.dep" && need_initramfs=1
{ [ -n "$sources" ] || stale "$OUT/tools.img" "$SELF" guest/boot "$BUN_BIN" "$RUNC_BIN" "$CRUN_BIN" "$IP_BIN" "$XT_BIN" "$CP_BIN" /bin/busybox native/shim native/serial native/common native/rootfs-cp native/sd-stub native/init "$kmods/modules.dep"; } && need_tools=1
if [ "$need_initramfs" = 1 ] || [ "$need_tools" = 1 ]; then
  declare -A dep_of=() loaded=()
  while IFS=: read -r mod deps; do dep_of[$mod]=$deps; done < "$kmods/modules.dep"
  order=()
  add_module() { # add_module <path relative to the modules dir>
    local m=$1 d
    [ -n "${loaded[$m]:-}" ] && return 0
    loaded[$m]=1
    for d in ${dep_of[$m]}; do add_module "$d"; done
    order+=("$m")
  }
  closure() { # closure <names...>: sets `order` to what they add to `loaded`
    local name path
    order=()
    for name in "$@"; do
      path=$(grep -m1 -E "(^|/)$name\.ko:" "$kmods/modules.dep" | cut -d: -f1 || true)
      [ -n "$path" ] || { echo "build-guest: module $name not in $krel" >&2; exit 1; }
      add_module "$path"
    done
  }
  closure $BOOT_MODULES
  boot_order=("${order[@]}")
  closure $LATE_MODULES
  late_order=("${order[@]}")
  loaded=()
  closure $NET_MODULES
  net_order=("${order[@]}")
fi
# strip_signature <src.ko> <dst.ko>: the module without Debian's appended signature. The
# kernel checks a signature on every insmod (a hash of the whole module and an RSA
# verification: ~0.1-0.2 s per module under TCG, 1.6 s for the initramfs's six); an
# unsigned module loads the same, and taints the kernel once ("module verification
# failed"). Layout: module, signature, struct module_signature (12 bytes, ending in the
# signature's big-endian length), then the 28-byte magic.
strip_signature() {
  local src=$1 dst=$2 size siglen
  if [ "$(tail -c 28 "$src")" = "~Module signature appended~" ]; then
    siglen=$(tail -c 32 "$src" | head -c 4 | od -An -tu1 | awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')
    size=$(stat -c %s "$src")
    head -c $((size - 28 - 12 - siglen)) "$src" > "$dst"
  else
    cp "$src" "$dst"
  fi
}
copy_modules() { # copy_modules <dir> <paths...>: the files and their load-order list
  local dir=$1 m; shift
  mkdir -p "$dir"
  for m in "$@"; do strip_signature "$kmods/$m" "$dir/$(basename "$m")"; echo "$(basename "$m")"; done > "$dir/load-order"
}

# --- initramfs -----------------------------------------------------------------------------
if [ "$need_initramfs" = 1 ]; then
  stage=$OUT/initramfs.stage
  rm -rf "$stage" && mkdir -p "$stage"/{dev,proc,sys,newroot,lib/modules}
  copy_modules "$stage/lib/modules" "${boot_order[@]}"
  # /init is static C (native/initramfs/), the initramfs's only program.
  cc -O2 -Wall -Wextra -static -o "$stage/init" native/initramfs/init.c
  echo "$krel" > "$stage/kernel-release"
  # Uncompressed: the kernel unpacks it faster than it would inflate it (TCG is slow).
  (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) > "$OUT/initramfs.img.tmp"
  mv "$OUT/initramfs.img.tmp" "$OUT/initramfs.img"
  rm -rf "$stage"
  echo "build-guest: built $OUT/initramfs.img (${#boot_order[@]} modules)"
fi

# --- tools image -------------------------------------------------------------------------
# Binaries from the host are glibc-linked and the machine's root image may have no glibc
# (busybox) or another one: each ELF gets our loader as its interpreter and our lib dir
# as its RPATH (patchelf), so it runs the same on any root and /proc/self/exe (runc's
# re-exec) stays the binary itself.
if [ "$need_tools" = 1 ]; then
  stage=$OUT/tools.stage
  rm -rf "$stage" && mkdir -p "$stage"/{bin,lib,dist,native/bin,boot}
  # CommonJS with Bun's bytecode cache beside it (guest-agent.js.jsc, for this very Bun):
  # the agent starts under TCG without the JIT, where parsing the bundle is a fifth of
  # its start (guest/README.md, "Start-up costs").
  # In CommonJS bun inlines import.meta.dir as this tree's path: REPO_ROOT is defined.
  bun build guest/main.ts --target=bun --format=cjs --bytecode --minify-syntax --minify-whitespace --define 'ARCBOX_BUNDLE_ROOT="/opt/arcbox"' --outdir "$stage/dist" --entry-naming "guest-agent.[ext]" >/dev/null
  cp /bin/busybox "$stage/bin/busybox"
  cp "$TINI_BIN" "$stage/bin/tini"
  cp "$BUN_BIN" "$stage/bin/bun"
  cp "$RUNC_BIN" "$stage/bin/runc"
  cp "$CRUN_BIN" "$stage/bin/crun"
  cp "$IP_BIN" "$stage/bin/ip"
  cp "$XT_BIN" "$stage/bin/xtables-legacy-multi"
  # GNU cp (busybox's applet stays out): a volume's copy-up keeps xattrs with `cp -a`.
  cp "$CP_BIN" "$stage/bin/cp"
  for t in iptables iptables-restore iptables-save; do ln -s xtables-legacy-multi "$stage/bin/$t"; done
  mkdir -p "$stage/lib/xtables" && cp "$XT_LIBDIR"/libxt_*.so "$XT_LIBDIR"/libipt_*.so "$stage/lib/xtables/"
  # Our C helpers, linked against the guest's loader and lib dir directly.
  gflags=(-O2 -Wall -Wextra -Wno-unused-result "-Wl,--dynamic-linker=$GUEST_LIB/ld-linux-x86-64.so.2" "-Wl,-rpath,$GUEST_LIB" -Wl,--disable-new-dtags)
  cc "${gflags[@]}" -o "$stage/native/bin/arcbox-shim" native/shim/*.c native/common/exec-path.c native/common/fd-io.c
  # docker cp, export and commit of containers in the engine machine (VM mode).
  cc "${gflags[@]}" -o "$stage/native/bin/arcbox-rootfs-cp" native/rootfs-cp/*.c
  # PID 1, with the serial relay linked in (it runs it in a child of its own): static and
  # no exec, so nothing stands between the kernel and the host's first answer but code
  # already read (no loader, no libc relocations, no cold reads of the tools image).
  cc -O2 -Wall -Wextra -Wno-unused-result -static -pthread -o "$stage/native/bin/arcbox-init" native/init/*.c native/serial/relay.c native/serial/mexec.c native/serial/netcmd.c native/serial/wire.c native/common/exec-path.c native/common/fd-io.c
  for exe in "$stage/bin/bun" "$stage/bin/runc" "$stage/bin/crun" "$stage/bin/ip" "$stage/bin/xtables-legacy-multi" "$stage/bin/cp"; do
    patchelf --set-interpreter "$GUEST_LIB/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$GUEST_LIB" "$exe"
  done
  # crun's libsystemd is a stub (native/sd-stub/: the machine has no systemd), so neither
  # it nor the five libraries it pulls in are loaded by every crun process under TCG.
  cc -O2 -Wall -shared -fPIC -Wl,-soname,libsystemd.so.0 -Wl,--version-script=native/sd-stub/sd-stub.map -o "$stage/lib/libsystemd.so.0" native/sd-stub/sd-stub.c
  # Shared libs: everything the ELFs link against, plus libseccomp (the shim dlopens it).
  for exe in "$BUN_BIN" "$RUNC_BIN" "$CRUN_BIN" "$IP_BIN" "$XT_BIN" "$CP_BIN" "$stage/native/bin/arcbox-shim" "$stage/native/bin/arcbox-rootfs-cp"; do
    LD_LIBRARY_PATH="$stage/lib" ldd "$exe" | awk '/=> \// {print $3} /^\s*\/lib.*ld-linux/ {print $1}'
  done | sort -u | grep -v "^$stage/lib/" | while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  cp -L /lib64/ld-linux-x86-64.so.2 "$stage/lib/"
  cp -L "$(ldconfig -p | awk '/libseccomp\.so\.2 / {print $NF; exit}')" "$stage/lib/"
  copy_modules "$stage/modules" "${late_order[@]}"
  copy_modules "$stage/modules/net" "${net_order[@]}"
  cp guest/boot/*.sh "$stage/boot/"
  chmod 0755 "$stage"/boot/*.sh
  for applet in $(busybox --list); do [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"; done
  echo "$krel" > "$stage/kernel-release"
  # Uncompressed: under TCG, inflating Bun's pages on every start costs more than reading them.
  rm -f "$OUT/tools.img.tmp"
  mksquashfs "$stage" "$OUT/tools.img.tmp" -noI -noD -noF -noX -all-root -no-progress -quiet >/dev/null
  mv "$OUT/tools.img.tmp" "$OUT/tools.img"
  rm -rf "$stage"
  echo "build-guest: built $OUT/tools.img"
fi

if stale "$OUT/manifest.json" "$OUT/vmlinuz" "$OUT/initramfs.img" "$OUT/tools.img"; then
  printf '{ "kernelRelease": "%s", "builtAt": "%s" }\n' "$krel" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$OUT/manifest.json"
fi
