#!/usr/bin/env bash
# Runs the whole test suite on a Debian 12 machine: installs what is missing first
# (system packages, Bun, modules, native helpers), then `bun test`. Tests start their
# own daemons, registries and containers on throwaway homes.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --no-start || exit 1
export PATH="/usr/local/bin:$PATH"
# Types and style are part of the suite: a type error or a style error fails the run
# (after the tests, so their result is still printed).
typecheck=0
bunx tsc -p . || typecheck=$?
[ "$typecheck" = 0 ] && echo "typecheck: ok" || echo "typecheck: FAILED"
# Style is checked, not remembered: Biome's formatter and linter (biome.json).
style=0
node_modules/.bin/biome ci --colors=off --reporter=summary . || style=$?
[ "$style" = 0 ] && echo "style: ok" || echo "style: FAILED (bunx biome check --write . fixes most)"
log=$(mktemp)
bun test --timeout 120000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -n 1 | tr -dc 0-9)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -n 1 | tr -dc 0-9)
rm -f "$log"
echo "tests: ${pass:-0} passed, ${fail:-0} failed"
[ "$status" = 0 ] && status=$typecheck
[ "$status" = 0 ] && status=$style
exit "$status"
