#!/usr/bin/env bash
# Regenerates proto/gen from proto/ offline (buf and protoc-gen-es come from node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
node_modules/.bin/buf lint
node_modules/.bin/buf generate
# The guest agent's static codec for machines.proto (buf's clean: true removed it).
bun scripts/gen-guest-codec.ts
