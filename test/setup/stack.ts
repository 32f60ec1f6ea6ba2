/**
 * Global setup of the `integration` project: one whole local stack (Temporal,
 * the fleet's Kubernetes control planes, registries) in `.flotilla/test-stack`
 * on port base 37000 (FLOTILLA_TEST_STACK_DIR / FLOTILLA_TEST_PORT_BASE), apart
 * from the dev stack. Anything an earlier run left behind is stopped and purged
 * first, so no test depends on leftovers; teardown stops every process.
 */
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { ProcRecord } from '../../stack/index.ts';
import { down, isAlive, recordedProcesses, up } from '../../stack/index.ts';
import type { StackInfo } from '../../stack/types.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

const root = path.resolve(import.meta.dirname, '../..');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const opts = {
    dataDir: path.resolve(process.env.FLOTILLA_TEST_STACK_DIR ?? path.join(root, '.flotilla', 'test-stack')),
    portBase: Number(process.env.FLOTILLA_TEST_PORT_BASE ?? 37000),
  };
  const log = (line: string) => process.stderr.write(`[test-stack] ${line}\n`);
  await down({ ...opts, purge: true, log });
  let started: ProcRecord[] = [];
  const stop = async () => {
    started = [...started, ...Object.values(recordedProcesses(opts))];
    await down({ ...opts, log });
    const survivors = started.filter((rec) => isAlive(rec));
    if (survivors.length)
      throw new Error(
        `test stack: processes survived down: ${survivors.map((r) => `${r.pid} ${r.command.slice(0, 2).join(' ')}`).join(', ')}`,
      );
  };
  try {
    const info = await up({ ...opts, log });
    started = Object.values(recordedProcesses(opts));
    project.provide('stack', info);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return stop;
}
