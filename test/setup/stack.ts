/**
 * Global setup of the `integration` project: one whole local stack (Temporal,
 * the fleet's Kubernetes control planes, registries) in `.flotilla/test-stack`
 * on port base 23000, apart from the dev stack (27000). Both stay below Linux's
 * ephemeral range (32768-60999): there, the apiservers' own connections to etcd
 * take source ports and a listener's bind fails now and then. Anything an earlier run left
 * behind is stopped and purged first, so no test depends on leftovers; teardown
 * stops every process and fails if one survives.
 *
 * Several runs may share a checkout (engineers, CI jobs): a run claims a slot by
 * an owner file holding its pid; when another live run owns the first slot it
 * takes the next (`.flotilla/test-stack-1` on 23500, ...). Runs from other
 * checkouts (git worktrees) on the same machine do not see that file: a slot
 * whose ports something else listens on is skipped too. FLOTILLA_TEST_STACK_DIR
 * and FLOTILLA_TEST_PORT_BASE pin one slot instead.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { ProcRecord } from '../../stack/index.ts';
import { down, isAlive, recordedProcesses, up } from '../../stack/index.ts';
import { portOpen } from '../../stack/net.ts';
import type { StackInfo } from '../../stack/types.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

const root = path.resolve(import.meta.dirname, '../..');
const BASE = 23000;
const SLOTS = 8;
const SLOT_PORT_STEP = 500;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<dataDir>.owner` for this process unless another live process holds it. */
function claim(dataDir: string): boolean {
  const owner = `${dataDir}.owner`;
  mkdirSync(path.dirname(owner), { recursive: true });
  for (;;) {
    try {
      writeFileSync(owner, `${process.pid}\n`, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(owner, 'utf8').trim());
      if (holder && holder !== process.pid && pidAlive(holder)) return false;
      rmSync(owner, { force: true });
    }
  }
}

/** True when another process (a test stack of another checkout, say) listens on the slot's ports. */
async function portsTaken(base: number): Promise<boolean> {
  const probes = [base, base + 4, base + 10, base + 100, base + 104];
  return (await Promise.all(probes.map((p) => portOpen(p, 300)))).some(Boolean);
}

async function chooseSlot(): Promise<{ dataDir: string; portBase: number }> {
  const pinnedDir = process.env.FLOTILLA_TEST_STACK_DIR;
  const pinnedBase = process.env.FLOTILLA_TEST_PORT_BASE;
  if (pinnedDir || pinnedBase) {
    const slot = {
      dataDir: path.resolve(pinnedDir ?? path.join(root, '.flotilla', 'test-stack')),
      portBase: Number(pinnedBase ?? BASE),
    };
    if (!claim(slot.dataDir)) throw new Error(`${slot.dataDir} is in use by another test run`);
    return slot;
  }
  for (let i = 0; i < SLOTS; i++) {
    const slot = {
      dataDir: path.join(root, '.flotilla', i === 0 ? 'test-stack' : `test-stack-${i}`),
      portBase: BASE + i * SLOT_PORT_STEP,
    };
    if (!claim(slot.dataDir)) continue;
    // Ours by the owner file; what listens on its ports now is left from an earlier run
    // of this checkout (stopped below by down) unless a live stack of another one holds them.
    if (!(await portsTaken(slot.portBase)) || Object.values(recordedProcesses(slot)).some((r) => isAlive(r)))
      return slot;
    rmSync(`${slot.dataDir}.owner`, { force: true });
  }
  throw new Error(`all ${SLOTS} test stack slots are in use by other test runs`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const opts = await chooseSlot();
  const release = () => rmSync(`${opts.dataDir}.owner`, { force: true });
  const log = (line: string) => process.stderr.write(`[test-stack] ${line}\n`);
  let started: ProcRecord[] = [];
  const stop = async () => {
    try {
      started = [...started, ...Object.values(recordedProcesses(opts))];
      await down({ ...opts, log });
      const survivors = started.filter((rec) => isAlive(rec));
      if (survivors.length) {
        const list = survivors.map((r) => `${r.pid} ${r.command.slice(0, 2).join(' ')}`).join(', ');
        throw new Error(`test stack: processes survived down: ${list}`);
      }
    } finally {
      release();
    }
  };
  try {
    await down({ ...opts, purge: true, log });
    const info = await up({ ...opts, log });
    started = Object.values(recordedProcesses(opts));
    project.provide('stack', info);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return stop;
}
