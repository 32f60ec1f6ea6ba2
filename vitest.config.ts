import { defineConfig } from 'vitest/config';

/**
 * Three projects, each with only the servers it needs, run one after another
 * (sequence.groupOrder) so that the unit tests' bursts never compete with the
 * timing of the integration tests for the machine's two cores:
 *  - unit: pure code, no server;
 *  - workflows: workflow logic with mocked activities on a real Temporal dev server;
 *  - integration: the real local stack (Temporal, Kubernetes control planes, registries),
 *    one stack for the whole project, files one at a time (faults are shared).
 * The JSON report feeds the "N passed, N failed" line of scripts/test.sh.
 */
export default defineConfig({
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: 'reports/vitest.json' },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      {
        test: {
          name: 'workflows',
          include: ['test/workflows/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          globalSetup: ['test/setup/temporal.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: { groupOrder: 2 },
          globalSetup: ['test/setup/stack.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
});
