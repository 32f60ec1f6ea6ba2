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

# Types and lint first (the lint forbids Node built-ins, clocks and randomness in
# workflows/); a failure fails the run, but the tests still run and are counted.
# FLOTILLA_SKIP_STATIC=1 skips them for a quick local loop.
static_rc=0
if [ "${FLOTILLA_SKIP_STATIC:-}" != 1 ]; then
  phase_start "typecheck and lint"
  node node_modules/typescript/bin/tsc --noEmit -p . || static_rc=1
  node node_modules/eslint/bin/eslint.js . || static_rc=1
  phase_end
fi

phase_start "vitest"
rm -f reports/vitest.json
node node_modules/vitest/vitest.mjs run "$@"
rc=$?
phase_end

[ -n "${FLOTILLA_T0:-}" ] && echo "total time: $(( $(date +%s) - FLOTILLA_T0 ))s"
[ $static_rc -ne 0 ] && echo "typecheck or lint failed (see above)"
node scripts/summary.ts reports/vitest.json
summary_rc=$?
[ $static_rc -ne 0 ] && exit 1
# vitest's own exit code counts too (a crashed global setup fails the run).
[ $rc -ne 0 ] && exit $rc
exit $summary_rc
