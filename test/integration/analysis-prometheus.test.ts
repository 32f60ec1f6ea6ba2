/**
 * Analyses against the stack's real Prometheus, on a real Temporal worker (the
 * stack's server): made-up traffic (the stack's metrics target) with a high
 * error rate fails the analysis within its count, a low one passes it, no
 * traffic makes it Inconclusive, a stopped Prometheus makes measurements Error
 * and, past consecutiveErrorLimit, the analysis Error. The HTTP JSON provider
 * reads the same Prometheus' JSON API.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createAnalysisActivities,
  measureOnce,
  parseAnalysisConfig,
  type AnalysisConfig,
} from '../../activities/analysis/index.ts';
import { AnalysisSchema, type AnalysisInput, type AnalysisVars } from '../../model/analysis.ts';
import { resolveConfig } from '../../stack/config.ts';
import { clearTraffic, prometheusQuery, setTraffic, stackOptions } from '../../stack/index.ts';
import { prometheusDown, prometheusHealthy, prometheusUp } from '../../stack/prometheus.ts';
import type { AnalysisRun } from '../support/analysis-workflows.ts';
import { quietRuntime } from '../support/temporal.ts';

const stack = inject('stack');
const opts = stackOptions(stack);
const log = pino({ level: 'silent' });
const run = randomUUID().slice(0, 8);
const SECRET = `s3cret-${run}`;
const promUrl = stack.prometheus.url;

/** Waits until Prometheus has a rate for this traffic (two scrapes in the window). */
async function waitForSeries(app: string, version: string, cluster: string): Promise<void> {
  const q = `sum(rate(http_requests_total{app="${app}",version="${version}",cluster="${cluster}"}[5s]))`;
  for (let i = 0; i < 100; i++) {
    const samples = await prometheusQuery(q, opts);
    if ((samples[0]?.value ?? 0) > 0) return;
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
  // The worker's configuration: a bearer token and a tenant header, which must never reach a history.
  config = parseAnalysisConfig({
    prometheus: { default: { url: promUrl, bearerToken: SECRET, headers: { 'X-Scope-OrgID': SECRET } } },
    web: { allowedUrls: [`${promUrl}/api/v1/`] },
  });
  connection = await NativeConnection.connect({ address: stack.temporal.address });
  client = new Client({
    connection: await Connection.connect({ address: stack.temporal.address }),
    namespace: stack.temporal.namespace,
  });
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
  await clearTraffic({ app: 'shop/web' }, opts);
  // Later files find the stack's Prometheus as they expect it, whatever happened here.
  const cfg = resolveConfig(opts);
  if (!(await prometheusHealthy(cfg))) await prometheusUp(cfg, () => {});
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

async function runAnalysis(
  a: AnalysisInput,
  vars: AnalysisVars,
  id: string,
): Promise<{ run: AnalysisRun; history: string }> {
  const parsed = AnalysisSchema.parse(a);
  const workflowId = `analysis-${id}-${run}`;
  const out = await client.workflow.execute('analysisWorkflow', {
    taskQueue,
    workflowId,
    args: [{ analysis: parsed, vars }],
    workflowExecutionTimeout: '3m',
  });
  const history = JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory());
  return { run: out as AnalysisRun, history };
}

describe('Prometheus provider', () => {
  it('a high error rate fails the analysis within its count', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `v2-${run}`, cluster: 'beijing' };
    await setTraffic(
      { app: 'shop/web', version: vars.version, cluster: 'beijing', rps: 50, errorRate: 0.5 },
      opts,
    );
    await waitForSeries('shop/web', vars.version, 'beijing');
    const { run: r, history } = await runAnalysis(analysis(), vars, 'high');
    expect(r.verdict.phase).toBe('Failed');
    expect(r.verdict.reason).toBe('FailureLimitExceeded');
    // failureLimit 1: the second failed measurement decides, well before count (5).
    expect(r.measurements.map((m) => m.phase)).toEqual(['Failed', 'Failed']);
    for (const m of r.measurements) {
      expect(m.result!.value).toBeCloseTo(0.5, 1); // the target's counters tick in whole requests
      expect(m.result!.asked).toContain(`version="${vars.version}"`);
    }
    expect(history).not.toContain(SECRET);
  });

  it('a low error rate passes the analysis after count measurements', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `v3-${run}`, cluster: 'shenzhen' };
    await setTraffic(
      { app: 'shop/web', version: vars.version, cluster: 'shenzhen', rps: 100, errorRate: 0.01 },
      opts,
    );
    await waitForSeries('shop/web', vars.version, 'shenzhen');
    const { run: r } = await runAnalysis(analysis(), vars, 'low');
    expect(r.verdict).toMatchObject({
      phase: 'Successful',
      reason: 'CountReached',
      counts: { count: 5, successful: 5 },
    });
    // 1 error a second in whole requests: a 5 s window reads between 0 and a few per cent.
    for (const m of r.measurements) {
      expect(m.result!.value).toBeGreaterThanOrEqual(0);
      expect(m.result!.value).toBeLessThan(0.05);
    }
  });

  it('no traffic at all: no data, Inconclusive past inconclusiveLimit', async () => {
    const vars = { app: 'web', namespace: 'shop', version: `never-${run}`, cluster: 'cloud-hk' };
    const { run: r } = await runAnalysis(analysis(), vars, 'none');
    expect(r.verdict).toMatchObject({ phase: 'Inconclusive', reason: 'InconclusiveLimitExceeded' });
    expect(r.measurements.map((m) => m.phase)).toEqual(['Inconclusive', 'Inconclusive', 'Inconclusive']);
    expect(r.measurements[0]!.message).toMatch(/^no data: the query returned an empty vector/);
  });

  it("a query Prometheus refuses is an Error measurement naming Prometheus' reason, not retried", async () => {
    const a = AnalysisSchema.parse(
      analysis({ provider: { prometheus: { query: 'sum(rate(http_requests_total[5s]' } } }),
    );
    const err = await measureOnce({ config, logger: log }, { analysis: a, vars: {}, at: Date.now() }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ type: 'AnalysisQueryInvalid', nonRetryable: true });
    expect((err as Error).message).toMatch(/bad_data/);
  });

  it('a range vector is refused with advice', async () => {
    const a = AnalysisSchema.parse(
      analysis({ provider: { prometheus: { query: 'http_requests_total[5s]' } } }),
    );
    const err = await measureOnce({ config, logger: log }, { analysis: a, vars: {}, at: Date.now() }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ type: 'AnalysisQueryInvalid' });
    expect((err as Error).message).toMatch(/range vector/);
  });
});

describe("web provider (Prometheus' own JSON API as the endpoint)", () => {
  it('reads a value by JSONPath and judges it', async () => {
    const version = `web-${run}`;
    await setTraffic({ app: 'shop/web', version, cluster: 'beijing', rps: 40, errorRate: 0.25 }, opts);
    await waitForSeries('shop/web', version, 'beijing');
    const q = errorRate('app="shop/web",version="{{version}}",cluster="{{cluster}}"');
    const a = AnalysisSchema.parse({
      name: 'web-error-rate',
      provider: {
        web: {
          url: `${promUrl}/api/v1/query?query=${encodeURIComponent(q)
            .replace(/%7B%7B/g, '{{')
            .replace(/%7D%7D/g, '}}')}`,
          jsonPath: '$.data.result[0].value[1]',
        },
      },
      successCondition: 'double(result) < 0.05',
      failureCondition: 'double(result) >= 0.2',
    });
    const m = await measureOnce(
      { config, logger: log },
      { analysis: a, vars: { version, cluster: 'beijing' }, at: Date.now() },
    );
    expect(m.phase).toBe('Failed');
    expect(Number(m.value)).toBeCloseTo(0.25, 1);
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
    const err = await measureOnce(
      { config, logger: log },
      { analysis: outside, vars: {}, at: Date.now() },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisConfigInvalid', nonRetryable: true });
  });
});

describe('Prometheus stopped', () => {
  it('measurements are Error (after Temporal retried them) and the analysis is Error past consecutiveErrorLimit', async () => {
    const cfg = resolveConfig(opts);
    await prometheusDown(cfg);
    expect(await prometheusHealthy(cfg)).toBe(false);
    const vars = { app: 'web', namespace: 'shop', version: `v2-${run}`, cluster: 'beijing' };
    const { run: r, history } = await runAnalysis(analysis(), vars, 'down');
    expect(r.verdict).toMatchObject({
      phase: 'Error',
      reason: 'ConsecutiveErrorLimitExceeded',
      counts: { consecutiveErrors: 3 },
    });
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
