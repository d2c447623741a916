#!/usr/bin/env bash
# Installs what is missing on a Debian 12 machine (system packages, Bun, node modules,
# native helpers, bundles, the machines' guest pieces), puts `arcbox` on PATH and starts ArcBox.
#   scripts/install.sh              install and start
#   scripts/install.sh --no-start   install only (used by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUN_VERSION=1.4.5
start=1
[ "${1:-}" = "--no-start" ] && start=0

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi

# System packages: only the missing ones, so a second run costs a few milliseconds.
mapfile -t wanted < <(grep -Ev '^\s*(#|$)' scripts/packages.txt | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Bun, from npm (it ships the native binary inside the package).
if [ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]; then
  echo "installing bun $BUN_VERSION"
  npm install -g --silent "bun@$BUN_VERSION" >/dev/null
fi

bun install --frozen-lockfile --silent
[ -x scripts/build-native.sh ] && scripts/build-native.sh
scripts/build.sh
# Machines' kernel, initramfs and tools image (quick when up to date).
scripts/build-guest.sh
ln -sf "$PWD/bin/arcbox" /usr/local/bin/arcbox

if [ "$start" = 1 ]; then
  arcbox start
  echo "point docker at it: arcbox docker enable && docker context use arcbox"
fi
