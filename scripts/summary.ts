// Prints "N passed, N failed[, N skipped]" from vitest's JSON report plus the
// static checks (lines "typecheck passed", "lint failed" in the second file):
// a failed type check or lint is a failed check in the count. Exits 1 when
// something failed, when no test ran, or when the report is missing.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'reports/vitest.json';
const staticFile = process.argv[3];
const checks = staticFile && existsSync(staticFile)
  ? readFileSync(staticFile, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean).map((l) => ({ name: l.split(' ')[0]!, ok: l.endsWith(' passed') }))
  : [];
const staticPassed = checks.filter((c) => c.ok).length;
const staticFailed = checks.length - staticPassed;
for (const c of checks.filter((x) => !x.ok)) console.log(`${c.name} failed (see above)`);
let report: { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number; numTotalTests: number };
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`${staticPassed} passed, ${staticFailed + 1} failed`);
  console.error(`no vitest report at ${file}: ${(e as Error).message}`);
  process.exit(1);
}
const skipped = report.numPendingTests + report.numTodoTests;
const passed = report.numPassedTests + staticPassed;
const failed = report.numFailedTests + staticFailed;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || report.numPassedTests === 0 ? 1 : 0);
