/**
 * A stack for benchmarks, apart from the dev stack (27000) and the test slots
 * (23000..26500): `.flotilla/bench-stack` on port base 22000 (pin with
 * FLOTILLA_BENCH_STACK_DIR / FLOTILLA_BENCH_PORT_BASE), purged first, stopped
 * at the end (also on Ctrl-C). `parts: 'registries'` starts only the four
 * registries (with the demo images in `central`): the clusters' control planes
 * idle at a few percent of CPU each, which is noise a registry benchmark does
 * without. `parts: 'all'` is the whole stack (`up`), for engine benchmarks.
 */
import path from 'node:path';
import { down, resolveConfig, stackInfo, up, type StackInfo } from '../../stack/index.ts';
import { pushDemoImages, registryDown, registryInfo, registryUp } from '../../stack/registry.ts';

export const benchRoot = path.resolve(import.meta.dirname, '..', '..');

export interface BenchStackOptions {
  parts?: 'registries' | 'all';
  /** Another fleet file (e.g. stack/fleet-6.yaml for the six-cluster engine figures). */
  fleetFile?: string;
  log?: (line: string) => void;
}

export async function withBenchStack<T>(
  fn: (stack: StackInfo) => Promise<T>,
  opts: BenchStackOptions = {},
): Promise<T> {
  const dataDir = path.resolve(
    process.env.FLOTILLA_BENCH_STACK_DIR ?? path.join(benchRoot, '.flotilla', 'bench-stack'),
  );
  const portBase = Number(process.env.FLOTILLA_BENCH_PORT_BASE ?? 22000);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[bench-stack] ${line}\n`));
  const sopts = { dataDir, portBase, log, ...(opts.fleetFile ? { fleetFile: opts.fleetFile } : {}) };
  // FLOTILLA_BENCH_KEEP=1 (engine benchmarks): start what is not running, leave it running at the end, so
  // runs in a row skip the stack's 30-40 s start (stop it with `FLOTILLA_STACK_DIR=<dir> npm run stack -- down`).
  const keep = process.env.FLOTILLA_BENCH_KEEP === '1' && opts.parts === 'all';
  if (!keep) await down({ ...sopts, purge: true });
  const cfg = resolveConfig(sopts);
  const stop = async () => {
    if (keep) return;
    if (opts.parts === 'all') await down(sopts);
    else await Promise.all(cfg.fleet.registries.map((r) => registryDown(cfg, r.name)));
  };
  const onSignal = () => {
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let info: StackInfo;
    if (opts.parts === 'all') info = await up(sopts);
    else {
      await Promise.all(
        cfg.fleet.registries.map(async (r) => {
          await registryUp(cfg, r, log);
          if (r.name === 'central') await pushDemoImages(cfg, registryInfo(cfg, r).host, log);
        }),
      );
      info = { ...stackInfo(cfg), clusters: [] };
    }
    return await fn(info);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
    log('stopped');
  }
}
