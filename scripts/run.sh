#!/usr/bin/env bash
# `npm start`: installs what is missing, brings up the local stack, starts the
# worker and the API, and runs one delivery whose progress it prints.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FLOTILLA_ROOT"
bash scripts/bootstrap.sh
hash -r # a Node 24 installed just now comes first on PATH
exec node scripts/demo.ts "$@"
