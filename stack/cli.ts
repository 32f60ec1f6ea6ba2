/**
 * `npm run stack -- <verb>`: up | down [--purge] | reset | status [--json] | fault <kind> <name>
 * | metrics set|clear|list | scrape add|remove|list.
 * Data dir: --data-dir, else FLOTILLA_STACK_DIR, else .flotilla/stack; ports from
 * --port-base, else FLOTILLA_PORT_BASE, else 27000.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { Fault, StackOptions, StackStatus, Traffic } from './index.ts';
import {
  addScrapeTarget,
  clearTraffic,
  down,
  FAULTS,
  fault,
  listTraffic,
  prometheusState,
  removeScrapeTarget,
  scrapeTargets,
  setTraffic,
  status,
  up,
} from './index.ts';

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

const number = (what: string) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${what}: not a number`);
  return n;
};

function printTraffic(list: Traffic[]): void {
  if (!list.length) return console.log('no traffic set');
  const rows = [
    ['APP', 'VERSION', 'CLUSTER', 'RPS', 'ERROR RATE'],
    ...list.map((t) => [t.app, t.version, t.cluster, String(t.rps), String(t.errorRate)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

const metrics = program
  .command('metrics')
  .description(
    'what the metrics target serves: http_requests_total{app,version,cluster,code} growing at a set rate (Prometheus scrapes it every second)',
  );
metrics
  .command('set')
  .description('set (or change) the traffic of one application version in one cluster')
  .requiredOption('--app <namespace/name>', 'application, e.g. shop/web')
  .requiredOption('--version <version>', 'version label, e.g. v2')
  .requiredOption('--cluster <cluster>', 'cluster name')
  .requiredOption('--rps <n>', 'requests per second, all codes', number('--rps'))
  .option('--error-rate <0..1>', 'share of requests answered 500', number('--error-rate'), 0)
  .action(async (o: { app: string; version: string; cluster: string; rps: number; errorRate: number }) => {
    printTraffic(await setTraffic(o, opts()));
  });
metrics
  .command('clear')
  .description('remove the traffic entries matching every option given (none: all) and their series')
  .option('--app <namespace/name>')
  .option('--version <version>')
  .option('--cluster <cluster>')
  .action(async (o: { app?: string; version?: string; cluster?: string }) => {
    const r = await clearTraffic(o, opts());
    console.log(`removed ${r.removed}`);
    printTraffic(r.traffic);
  });
metrics
  .command('list')
  .description('the traffic entries set')
  .action(async () => printTraffic(await listTraffic(opts())));

const scrape = program
  .command('scrape')
  .description(
    "extra targets for the stack's Prometheus (kept in <data>/prometheus/scrape-targets.json, read via file_sd)",
  );
scrape
  .command('add')
  .description('scrape <url> as job <job> from now on')
  .argument('<job>', 'job label, e.g. flotilla-api')
  .argument('<url>', 'e.g. http://127.0.0.1:27080/metrics')
  .action((job: string, url: string) => {
    addScrapeTarget({ job, url }, opts());
    console.log(`${job}: ${url} added`);
  });
scrape
  .command('remove')
  .description('stop scraping a job (or only its target at <url>)')
  .argument('<job>')
  .argument('[url]')
  .action((job: string, url?: string) => {
    console.log(`${scrapeTargets(opts()).length - removeScrapeTarget(job, url, opts()).length} removed`);
  });
scrape
  .command('list')
  .description('every target Prometheus scrapes, with the health of its last scrape')
  .action(async () => {
    const live = await prometheusState(opts());
    const extra = scrapeTargets(opts());
    const rows = [['JOB', 'URL', 'HEALTH']];
    for (const t of live) rows.push([t.job, t.url, t.health + (t.lastError ? ` (${t.lastError})` : '')]);
    for (const t of extra)
      if (!live.some((l) => l.job === t.job && l.url === t.url)) rows.push([t.job, t.url, 'not scraped yet']);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows)
      console.log(
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  });

try {
  await program.parseAsync();
} catch (err) {
  console.error(`stack: ${(err as Error).message}`);
  process.exitCode = 1;
}
