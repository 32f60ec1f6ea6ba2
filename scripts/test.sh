#!/usr/bin/env bash
# The test command (`npm test`): installs what is missing, runs every vitest
# project (unit, workflows on a real Temporal server, integration on the real
# local stack), and ends with a plain "N passed, N failed" line derived from
# vitest's JSON report, so a run that executed no test is visible.
# Extra arguments go to vitest (e.g. `npm test -- --project unit`).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$FLOTILLA_ROOT"
if ! bash scripts/bootstrap.sh; then
  echo "set-up failed: no test ran"
  echo "0 passed, 0 failed"
  exit 1
fi
hash -r # a Node 24 installed just now comes first on PATH

phase_start "vitest"
rm -f reports/vitest.json
node node_modules/vitest/vitest.mjs run "$@"
rc=$?
phase_end

[ -n "${FLOTILLA_T0:-}" ] && echo "total time: $(( $(date +%s) - FLOTILLA_T0 ))s"
node scripts/summary.ts reports/vitest.json
summary_rc=$?
# vitest's own exit code counts too (a crashed global setup fails the run).
[ $rc -ne 0 ] && exit $rc
exit $summary_rc
