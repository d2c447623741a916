#!/usr/bin/env bash
# Compiles ArcBox's native helpers (native/*/ C sources) into native/bin/.
# Quick and idempotent: a binary is rebuilt only when its source is newer.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p native/bin
build() { # build <output> <sources...>
  local out="native/bin/$1"; shift
  if [ -x "$out" ] && [ -z "$(find "$@" -newer "$out" 2>/dev/null)" ]; then return 0; fi
  cc -O2 -Wall -Wextra -Wno-unused-result -pthread -o "$out.tmp" $(printf '%s\n' "$@" | grep '\.c$')
  mv "$out.tmp" "$out"
  echo "built $out"
}
build arcbox-shim native/shim/*.c native/shim/*.h native/common/exec-path.c native/common/exec-path.h native/common/fd-io.c native/common/fd-io.h
build arcbox-rootfs-cp native/rootfs-cp/*.c native/rootfs-cp/*.h
build arcbox-virtiofsd native/virtiofs/*.c native/virtiofs/*.h
build arcbox-init native/init/*.c native/init/*.h native/serial/relay.c native/serial/mexec.c native/serial/netcmd.c native/serial/wire.c native/serial/relay.h native/common/exec-path.c native/common/exec-path.h native/common/fd-io.c native/common/fd-io.h
