/**
 * `npm run stack -- <verb>`: up | down [--purge] | reset | status [--json] | fault <kind> <name>.
 * Data dir: --data-dir, else FLOTILLA_STACK_DIR, else .flotilla/stack; ports from
 * --port-base, else FLOTILLA_PORT_BASE, else 27000.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { Fault, StackOptions, StackStatus } from './index.ts';
import { down, FAULTS, fault, status, up } from './index.ts';

const program = new Command('stack')
  .description(
    "Flotilla's local stack: Temporal, Kubernetes control planes with fake nodes, registries; all on 127.0.0.1",
  )
  .option('--data-dir <dir>', 'data dir (env FLOTILLA_STACK_DIR; default .flotilla/stack)')
  .option(
    '--port-base <port>',
    'first port; every port derives from it (env FLOTILLA_PORT_BASE; default 27000)',
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
      return n;
    },
  )
  .option('--fleet <file>', 'fleet file (default stack/fleet.yaml)')
  .showHelpAfterError();

function opts(): StackOptions {
  const o = program.opts<{ dataDir?: string; portBase?: number; fleet?: string }>();
  return {
    ...(o.dataDir ? { dataDir: o.dataDir } : {}),
    ...(o.portBase ? { portBase: o.portBase } : {}),
    ...(o.fleet ? { fleetFile: o.fleet } : {}),
  };
}

const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;

function printStatus(s: StackStatus): void {
  const rows: string[][] = [['PART', 'STATE', 'ENDPOINT', 'DETAIL', 'PIDS', 'RSS', 'PSS']];
  for (const p of s.parts) {
    const state = p.fault
      ? p.fault === 'down'
        ? 'DOWN (fault)'
        : `FAULT (${p.fault})`
      : p.healthy
        ? 'healthy'
        : p.processes.some((x) => x.alive)
          ? 'UNHEALTHY'
          : 'stopped';
    const rss = p.processes.reduce((sum, x) => sum + x.rssBytes, 0);
    const pss = p.processes.reduce((sum, x) => sum + x.pssBytes, 0);
    rows.push([
      p.part,
      state,
      p.endpoint,
      p.detail ?? '',
      p.processes.map((x) => x.pid ?? '-').join(','),
      rss ? mib(rss) : '',
      pss ? mib(pss) : '',
    ]);
    if (p.processes.length > 1) {
      for (const x of p.processes) {
        rows.push([
          `  ${x.part.split('/').pop()}`,
          x.healthy ? 'ok' : x.alive ? 'unhealthy' : 'stopped',
          '',
          '',
          String(x.pid ?? '-'),
          x.rssBytes ? mib(x.rssBytes) : '',
          x.pssBytes ? mib(x.pssBytes) : '',
        ]);
      }
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
  console.log(
    `\n${s.healthy ? 'all healthy' : 'NOT all healthy'}; data ${s.dataDir}; port base ${s.portBase}; total RSS ${mib(s.totalRssBytes)}, PSS ${mib(s.totalPssBytes)}`,
  );
}

program
  .command('up')
  .description('start every part (parts already healthy are left running); writes the stack info file')
  .action(async () => {
    await up({ ...opts(), log });
  });

program
  .command('down')
  .description('stop every process of the stack (data kept)')
  .option('--purge', 'also delete the data dir')
  .action(async (o: { purge?: boolean }) => {
    await down({ ...opts(), log, purge: Boolean(o.purge) });
  });

program
  .command('reset')
  .description('down --purge: stop everything and delete the data dir')
  .action(async () => {
    await down({ ...opts(), log, purge: true });
  });

program
  .command('status')
  .description('health of every part; exit 0 only when all are healthy')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const s = await status(opts());
    if (o.json) console.log(JSON.stringify(s, null, 2));
    else printStatus(s);
    process.exitCode = s.healthy ? 0 : 1;
  });

program
  .command('fault')
  .description(
    'simulate an outage: cluster-down|cluster-up <cluster> (apiserver stopped), cluster-hang|cluster-5xx|cluster-heal <cluster> (at its API-server proxy: every request hangs, every request 503, rules cleared), registry-down|registry-up <registry>',
  )
  .argument('<kind>', FAULTS.join(' | '), (v) => {
    if (!(FAULTS as readonly string[]).includes(v))
      throw new InvalidArgumentError(`one of ${FAULTS.join(', ')}`);
    return v as Fault;
  })
  .argument('<name>', 'cluster or registry name')
  .action(async (kind: Fault, name: string) => {
    await fault(kind, name, { ...opts(), log });
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`stack: ${(err as Error).message}`);
  process.exitCode = 1;
}
