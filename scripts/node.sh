#!/usr/bin/env bash
# Runs a TypeScript entry point with Node >= 22.19 (Node 24 from the cache when
# the system Node is older). Node strips the types itself: no build step.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if ! node_major_ok || [ ! -d "$FLOTILLA_ROOT/node_modules" ]; then
  bash "$FLOTILLA_ROOT/scripts/bootstrap.sh" >&2
  hash -r # a Node 24 installed just now comes first on PATH
fi
exec node --disable-warning=ExperimentalWarning "$@"
