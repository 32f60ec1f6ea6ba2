/**
 * Analyses against a real Prometheus (Debian's package), on a real Temporal
 * worker (the stack's server): made-up traffic with a high error rate fails
 * the analysis within its count, a low one passes it, no traffic makes it
 * Inconclusive, a stopped Prometheus makes measurements Error and, past
 * consecutiveErrorLimit, the analysis Error. The HTTP JSON provider reads the
 * same Prometheus' JSON API.
 *
 * The stack gets its own Prometheus and metrics target on branch
 * stack-progressive; until then this file starts both itself (Prometheus
 * scraping every second, the target a small HTTP server here) and stops them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAnalysisActivities, measureOnce, parseAnalysisConfig, type AnalysisConfig } from '../../activities/analysis/index.ts';
import { AnalysisSchema, type AnalysisInput, type AnalysisVars } from '../../model/analysis.ts';
import type { AnalysisRun } from '../support/analysis-workflows.ts';
import { quietRuntime } from '../support/temporal.ts';

const stack = inject('stack');
const log = pino({ level: 'silent' });
const run = randomUUID().slice(0, 8);
const SECRET = `s3cret-${run}`;

// --- a metrics target: request counters that grow every second at the rate set ----------------

interface Traffic {
  rps: number;
  errorRate: number;
  ok: number;
  errors: number;
}
const traffic = new Map<string, Traffic>();
const key = (app: string, version: string, cluster: string) => JSON.stringify([app, version, cluster]);

function setTraffic(t: { app: string; version: string; cluster: string; rps: number; errorRate: number }): void {
  const k = key(t.app, t.version, t.cluster);
  const cur = traffic.get(k) ?? { rps: 0, errorRate: 0, ok: 0, errors: 0 };
  traffic.set(k, { ...cur, rps: t.rps, errorRate: t.errorRate });
}

function metricsText(): string {
  const lines = ['# TYPE http_requests_total counter'];
  for (const [k, t] of traffic) {
    const [app, version, cluster] = JSON.parse(k) as string[];
    const l = `app="${app}",version="${version}",cluster="${cluster}"`;
    lines.push(`http_requests_total{${l},code="200"} ${t.ok}`, `http_requests_total{${l},code="500"} ${t.errors}`);
  }
  return `${lines.join('\n')}\n`;
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

// --- Prometheus, started and stopped here ------------------------------------------------------

let work: string;
let target: Server;
let ticker: NodeJS.Timeout;
let prom: ChildProcess | undefined;
let promUrl: string;
let promPort: number;

async function startPrometheus(targetPort: number): Promise<void> {
  writeFileSync(
    path.join(work, 'prometheus.yml'),
    `global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: target\n    static_configs: [{targets: ['127.0.0.1:${targetPort}']}]\n`,
  );
  prom = spawn(
    'prometheus',
    [
      `--config.file=${path.join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 150; i++) {
    const ok = await fetch(`${promUrl}/-/ready`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('Prometheus did not become ready in 30 s');
}

async function stopPrometheus(): Promise<void> {
  const p = prom;
  prom = undefined;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** Waits until Prometheus has a rate for this traffic (two scrapes in the window). */
async function waitForSeries(app: string, version: string, cluster: string): Promise<void> {
  const q = `sum(rate(http_requests_total{app="${app}",version="${version}",cluster="${cluster}"}[5s]))`;
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`).then((x) => x.json() as Promise<{ data: { result: { value: [number, string] }[] } }>);
    const v = Number(r.data.result[0]?.value[1]);
    if (v > 0) return;
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`no rate for ${app} ${version} ${cluster} after 30 s`);
}

// --- Temporal -----------------------------------------------------------------------------------

let connection: NativeConnection;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
const taskQueue = `analysis-${run}`;
let config: AnalysisConfig;

beforeAll(async () => {
  quietRuntime();
  work = mkdtempSync(path.join(tmpdir(), 'analysis-prometheus-'));
  target = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(metricsText());
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  ticker = setInterval(() => {
    for (const t of traffic.values()) {
      t.ok += t.rps * (1 - t.errorRate);
      t.errors += t.rps * t.errorRate;
    }
  }, 1000);
  promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  await startPrometheus((target.address() as { port: number }).port);
  // The worker's configuration: a bearer token and a tenant header, which must never reach a history.
  config = parseAnalysisConfig({
    prometheus: { default: { url: promUrl, bearerToken: SECRET, headers: { 'X-Scope-OrgID': SECRET } } },
    web: { allowedUrls: [`${promUrl}/api/v1/`] },
  });
  connection = await NativeConnection.connect({ address: stack.temporal.address });
  client = new Client({ connection: await Connection.connect({ address: stack.temporal.address }), namespace: stack.temporal.namespace });
  worker = await Worker.create({
    connection,
    namespace: stack.temporal.namespace,
    taskQueue,
    activities: createAnalysisActivities({ config, logger: log }),
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: path.resolve(import.meta.dirname, '../support/analysis-workflows.ts'),
      logger: new DefaultLogger('WARN'),
    }),
  });
  workerRun = worker.run();
});

afterAll(async () => {
  if (worker) {
    worker.shutdown();
    await workerRun;
  }
  await client?.connection.close();
  await connection?.close();
  clearInterval(ticker);
  await stopPrometheus();
  await new Promise((r) => target?.close(r));
  rmSync(work, { recursive: true, force: true });
});

const errorRate = (sel: string) =>
  `sum(rate(http_requests_total{${sel},code=~"5.."}[5s])) / sum(rate(http_requests_total{${sel}}[5s]))`;
const SEL = 'app="{{namespace}}/{{app}}",version="{{version}}",cluster="{{cluster}}"';

function analysis(over: Partial<AnalysisInput> = {}): AnalysisInput {
  return {
    name: 'error-rate',
    provider: { prometheus: { query: errorRate(SEL) } },
    interval: '1s',
    count: 5,
    successCondition: 'result < 0.05',
    failureCondition: 'result >= 0.2',
    failureLimit: 1,
    inconclusiveLimit: 2,
    consecutiveErrorLimit: 2,
    timeout: '5s',
    ...over,
  };
}

async function runAnalysis(a: AnalysisInput, vars: AnalysisVars, id: string): Promise<{ run: AnalysisRun; history: string }> {
  const parsed = AnalysisSchema.parse(a);
  const workflowId = `analysis-${id}-${run}`;
  const out = await client.workflow.execute('analysisWorkflow', { taskQueue, workflowId, args: [{ analysis: parsed, vars }], workflowExecutionTimeout: '3m' });
  const history = JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory());
  return { run: out as AnalysisRun, history };
}

describe('Prometheus provider', () => {
  it('a high error rate fails the analysis within its count', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `v2-${run}`, cluster: 'beijing' };
    setTraffic({ app: 'shop/web', version: vars.version, cluster: 'beijing', rps: 50, errorRate: 0.5 });
    await waitForSeries('shop/web', vars.version, 'beijing');
    const { run: r, history } = await runAnalysis(analysis(), vars, 'high');
    expect(r.verdict.phase).toBe('Failed');
    expect(r.verdict.reason).toBe('FailureLimitExceeded');
    // failureLimit 1: the second failed measurement decides, well before count (5).
    expect(r.measurements.map((m) => m.phase)).toEqual(['Failed', 'Failed']);
    for (const m of r.measurements) {
      expect(m.result!.value).toBeCloseTo(0.5, 2);
      expect(m.result!.asked).toContain(`version="${vars.version}"`);
    }
    expect(history).not.toContain(SECRET);
  });

  it('a low error rate passes the analysis after count measurements', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `v3-${run}`, cluster: 'shenzhen' };
    setTraffic({ app: 'shop/web', version: vars.version, cluster: 'shenzhen', rps: 100, errorRate: 0.01 });
    await waitForSeries('shop/web', vars.version, 'shenzhen');
    const { run: r } = await runAnalysis(analysis(), vars, 'low');
    expect(r.verdict).toMatchObject({ phase: 'Successful', reason: 'CountReached', counts: { count: 5, successful: 5 } });
    for (const m of r.measurements) expect(m.result!.value).toBeCloseTo(0.01, 3);
  });

  it('no traffic at all: no data, Inconclusive past inconclusiveLimit', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `never-${run}`, cluster: 'cloud-hk' };
    const { run: r } = await runAnalysis(analysis(), vars, 'none');
    expect(r.verdict).toMatchObject({ phase: 'Inconclusive', reason: 'InconclusiveLimitExceeded' });
    expect(r.measurements.map((m) => m.phase)).toEqual(['Inconclusive', 'Inconclusive', 'Inconclusive']);
    expect(r.measurements[0]!.message).toMatch(/^no data: the query returned an empty vector/);
  });

  it('a query Prometheus refuses is an Error measurement naming Prometheus\' reason, not retried', async () => {
    const a = AnalysisSchema.parse(analysis({ provider: { prometheus: { query: 'sum(rate(http_requests_total[5s]' } } }));
    const err = await measureOnce({ config, logger: log }, { analysis: a, vars: {}, at: Date.now() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisQueryInvalid', nonRetryable: true });
    expect((err as Error).message).toMatch(/bad_data/);
  });

  it('a range vector is refused with advice', async () => {
    const a = AnalysisSchema.parse(analysis({ provider: { prometheus: { query: 'http_requests_total[5s]' } } }));
    const err = await measureOnce({ config, logger: log }, { analysis: a, vars: {}, at: Date.now() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisQueryInvalid' });
    expect((err as Error).message).toMatch(/range vector/);
  });
});

describe('web provider (Prometheus\' own JSON API as the endpoint)', () => {
  it('reads a value by JSONPath and judges it', async () => {
    const version = `web-${run}`;
    setTraffic({ app: 'shop/web', version, cluster: 'beijing', rps: 40, errorRate: 0.25 });
    await waitForSeries('shop/web', version, 'beijing');
    const q = errorRate('app="shop/web",version="{{version}}",cluster="{{cluster}}"');
    const a = AnalysisSchema.parse({
      name: 'web-error-rate',
      provider: { web: { url: `${promUrl}/api/v1/query?query=${encodeURIComponent(q).replace(/%7B%7B/g, '{{').replace(/%7D%7D/g, '}}')}`, jsonPath: '$.data.result[0].value[1]' } },
      successCondition: 'double(result) < 0.05',
      failureCondition: 'double(result) >= 0.2',
    });
    const m = await measureOnce({ config, logger: log }, { analysis: a, vars: { version, cluster: 'beijing' }, at: Date.now() });
    expect(m.phase).toBe('Failed');
    expect(Number(m.value)).toBeCloseTo(0.25, 2);
  });

  it('a path that matches nothing is an Error measurement; a URL the worker does not allow is refused', async () => {
    const a = AnalysisSchema.parse({
      name: 'web-missing',
      provider: { web: { url: `${promUrl}/api/v1/status/buildinfo`, jsonPath: '$.data.nothing' } },
      successCondition: 'result == "x"',
    });
    const m = await measureOnce({ config, logger: log }, { analysis: a, vars: {}, at: Date.now() });
    expect(m).toMatchObject({ phase: 'Error' });
    expect(m.message).toMatch(/matched nothing/);
    const outside = AnalysisSchema.parse({ ...a, provider: { web: { url: `${promUrl}/-/ready` } } });
    const err = await measureOnce({ config, logger: log }, { analysis: outside, vars: {}, at: Date.now() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisConfigInvalid', nonRetryable: true });
  });
});

describe('Prometheus stopped', () => {
  it('measurements are Error (after Temporal retried them) and the analysis is Error past consecutiveErrorLimit', async () => {
    await stopPrometheus();
    const vars = { app: 'web', namespace: 'shop', version: `v2-${run}`, cluster: 'beijing' };
    const { run: r, history } = await runAnalysis(analysis(), vars, 'down');
    expect(r.verdict).toMatchObject({ phase: 'Error', reason: 'ConsecutiveErrorLimitExceeded', counts: { consecutiveErrors: 3 } });
    expect(r.measurements.map((m) => m.phase)).toEqual(['Error', 'Error', 'Error']);
    for (const m of r.measurements) {
      expect(m.failureType).toBe('AnalysisProviderUnreachable');
      expect(m.message).toMatch(/ECONNREFUSED/);
    }
    // Retryable: Temporal made a second attempt of each measurement.
    expect(history.match(/"attempt":2/g)?.length ?? 0).toBeGreaterThanOrEqual(1);
    expect(history).not.toContain(SECRET);
  });
});
