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
# workflows/); each counts as one check in the closing line (a failed one as
# failed), and the tests still run. FLOTILLA_SKIP_STATIC=1 skips them for a quick
# local loop.
mkdir -p reports
static=reports/static.txt
: > "$static"
if [ "${FLOTILLA_SKIP_STATIC:-}" != 1 ]; then
  phase_start "typecheck and lint"
  if node node_modules/typescript/bin/tsc --noEmit -p .; then echo "typecheck passed" >> "$static"; else echo "typecheck failed" >> "$static"; fi
  if node node_modules/eslint/bin/eslint.js .; then echo "lint passed" >> "$static"; else echo "lint failed" >> "$static"; fi
  phase_end
fi

phase_start "vitest"
rm -f reports/vitest.json
node node_modules/vitest/vitest.mjs run "$@"
rc=$?
phase_end

[ -n "${FLOTILLA_T0:-}" ] && echo "total time: $(( $(date +%s) - FLOTILLA_T0 ))s"
node scripts/summary.ts reports/vitest.json "$static"
summary_rc=$?
# vitest's own exit code counts too (a crashed global setup fails the run).
[ $rc -ne 0 ] && exit $rc
exit $summary_rc
