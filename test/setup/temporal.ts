/**
 * Global setup of the `workflows` project: one real Temporal dev server (the
 * CLI binary the stack builds), in memory, on a free port; stopped at the end.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { TestProject } from 'vitest/node';
import { searchAttributeKeys } from '../../workflows/messages.ts';
import { temporalBinary } from './binaries.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBinary() },
      ip: '127.0.0.1',
      searchAttributes: searchAttributeKeys,
      log: { format: 'pretty', level: 'warn' },
    },
  });
  project.provide('temporalAddress', env.address);
  return async () => {
    await env.teardown();
  };
}
