/**
 * The CLI's arguments become the right HTTP requests (method, path, body,
 * query, Idempotency-Key, bearer token), and its answers the right output and
 * exit code: run in-process against a real HTTP server that records what it
 * gets. Usage errors never reach the server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, json, recorder, type Handler, type Recorder } from './cli-helpers.ts';

const TOKEN = 'secret-token-0123456789abcdef';
let dir: string;
let api: Recorder;
let answer: Handler;

const status = (phase: string, extra: Record<string, unknown> = {}) => ({
  id: 'd-1',
  type: 'deploy',
  app: { name: 'web', namespace: 'shop' },
  image: 'reg/web:v2',
  phase,
  message: `it is ${phase}`,
  currentWave: 0,
  waves: [['beijing']],
  steps: ['apply', 'wait'],
  clusters: { beijing: { cluster: 'beijing', phase: phase === 'Healthy' ? 'Healthy' : 'Progressing', desiredReplicas: 2, readyReplicas: phase === 'Healthy' ? 2 : 0, step: 1 } },
  audit: [],
  ...extra,
});

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'cli-args-'));
  writeFileSync(
    path.join(dir, 'spec.yaml'),
    ['# a comment', 'app:', '  name: web', '  namespace: shop', '  image: reg/web:v1', '  replicas: 3', '  placement: {clusters: [beijing]}', 'onFailure: fail'].join('\n'),
  );
  writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ type: 'canary', app: { name: 'web', image: 'reg/web:v1' } }));
  api = await recorder((req, res) => answer(req, res));
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  api.requests.length = 0;
});

const run = (argv: string[], stdin?: string) => cli(['--api', api.url, '--token', TOKEN, ...argv], { cwd: dir, ...(stdin !== undefined ? { stdin } : {}) });

describe('starting deliveries', () => {
  it('deploy -f sends the YAML as JSON with type deploy, --image in app.image, a fresh Idempotency-Key and the token', async () => {
    answer = (_req, res) => json(res, 202, { id: 'd-1', status: '/v1/deliveries/d-1', digests: { 'reg/web:v2': 'sha256:abc' } });
    const a = await run(['deploy', '-f', 'spec.yaml', '--image', 'reg/web:v2']);
    await run(['deploy', '-f', 'spec.yaml']);
    expect(a).toMatchObject({ code: 0, stderr: '' });
    expect(a.stdout).toBe('started delivery d-1\n  reg/web:v2 pinned to sha256:abc\n');
    const [first, second] = api.requests;
    expect(first).toMatchObject({ method: 'POST', url: '/v1/deliveries' });
    expect(first!.body).toEqual({
      type: 'deploy',
      app: { name: 'web', namespace: 'shop', image: 'reg/web:v2', replicas: 3, placement: { clusters: ['beijing'] } },
      onFailure: 'fail',
    });
    expect((second!.body as { app: { image: string } }).app.image).toBe('reg/web:v1');
    expect(first!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(first!.headers['content-type']).toBe('application/json');
    expect(first!.headers['idempotency-key']).toMatch(/^flotilla-cli-[0-9a-f-]{36}$/);
    expect(second!.headers['idempotency-key']).not.toBe(first!.headers['idempotency-key']);
  });

  it('--idempotency-key is sent as given, and a 200 (an earlier start with that key) says so', async () => {
    answer = (_req, res) => json(res, 200, { id: 'd-1', status: '/v1/deliveries/d-1' });
    const r = await run(['deploy', '-f', 'spec.yaml', '--idempotency-key', 'build-4711']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('delivery d-1 was started earlier with this Idempotency-Key');
    expect(api.requests[0]!.headers['idempotency-key']).toBe('build-4711');
  });

  it('canary and bluegreen set their type; a spec written for another type is refused before anything is sent', async () => {
    answer = (_req, res) => json(res, 202, { id: 'd-2', status: '/v1/deliveries/d-2' });
    expect((await run(['canary', '-f', 'spec.json'])).code).toBe(0);
    expect((await run(['bluegreen', '-f', 'spec.yaml'])).code).toBe(0);
    expect(api.requests.map((r) => (r.body as { type: string }).type)).toEqual(['canary', 'blueGreen']);
    api.requests.length = 0;
    const wrong = await run(['deploy', '-f', 'spec.json']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('error: spec.json: type is "canary" but this command starts a deploy delivery (use `flotilla canary`, or drop type from the file)\n');
    expect(api.requests).toEqual([]);
  });

  it('-f - reads the spec from stdin; bad YAML, a list and a missing file are one line each, exit 1, nothing sent', async () => {
    answer = (_req, res) => json(res, 202, { id: 'd-3', status: '/v1/deliveries/d-3' });
    expect((await run(['deploy', '-f', '-'], '{"app": {"name": "web"}}')).code).toBe(0);
    expect(api.requests[0]!.body).toEqual({ type: 'deploy', app: { name: 'web' } });
    api.requests.length = 0;
    const bad = await run(['deploy', '-f', '-'], 'app: {name: web\n');
    const list = await run(['deploy', '-f', '-'], '- a\n- b\n');
    const missing = await run(['deploy', '-f', 'nope.yaml']);
    const two = await run(['deploy', '-f', '-'], 'a: 1\n---\nb: 2\n');
    for (const r of [bad, list, missing, two]) {
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    expect(bad.stderr).toMatch(/^error: \(stdin\):2:1: not valid YAML or JSON/);
    expect(list.stderr).toContain('must be a mapping');
    expect(missing.stderr).toBe('error: nope.yaml: no such file\n');
    expect(two.stderr).toContain('holds 2 YAML documents');
    expect(api.requests).toEqual([]);
  });

  it('replicate sends the image and its targets (a list, or "all")', async () => {
    answer = (_req, res) => json(res, 202, { id: 'r-1' });
    await run(['replicate', '--image', 'reg/web:v2', '--to', 'cn-north, cn-south']);
    await run(['replicate', '--image', 'reg/web:v2', '--to', 'all']);
    expect(api.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ['POST', '/v1/replications', { image: 'reg/web:v2', to: ['cn-north', 'cn-south'] }],
      ['POST', '/v1/replications', { image: 'reg/web:v2', to: 'all' }],
    ]);
    expect(api.requests.every((r) => typeof r.headers['idempotency-key'] === 'string')).toBe(true);
  });
});

describe('acting', () => {
  it('each action posts {action, cluster, comment} (approve/reject with the gate, promote --full) to the delivery', async () => {
    answer = (_req, res) => json(res, 200, status('Progressing'));
    const cmds = [
      ['retry', 'd-1', '--cluster', 'beijing', '-m', 'node pool fixed'],
      ['skip', 'd-1', '--cluster', 'beijing'],
      ['abort', 'd-1'],
      ['rollback', 'd-1', '-m', 'bad build'],
      ['promote', 'd-1', '--full'],
      ['approve', 'd-1', '--gate', 'canary-25', '-m', 'metrics fine'],
      ['reject', 'd-1', '--gate', 'canary-25'],
    ];
    for (const c of cmds) expect((await run(c)).code, c.join(' ')).toBe(0);
    expect(api.requests.map((r) => [r.url, r.body])).toEqual([
      ['/v1/deliveries/d-1/actions', { action: 'retry', cluster: 'beijing', comment: 'node pool fixed' }],
      ['/v1/deliveries/d-1/actions', { action: 'skip', cluster: 'beijing' }],
      ['/v1/deliveries/d-1/actions', { action: 'abort' }],
      ['/v1/deliveries/d-1/actions', { action: 'rollback', comment: 'bad build' }],
      ['/v1/deliveries/d-1/actions', { action: 'promote', full: true }],
      ['/v1/deliveries/d-1/actions', { action: 'approve', gate: 'canary-25', comment: 'metrics fine' }],
      ['/v1/deliveries/d-1/actions', { action: 'reject', gate: 'canary-25' }],
    ]);
  });

  it('a rollback of a finished delivery names the delivery it started', async () => {
    answer = (_req, res) => json(res, 202, { id: 'd-9', status: '/v1/deliveries/d-9', rollbackOf: 'd-1' });
    const r = await run(['rollback', 'd-1']);
    expect(r.stdout).toBe('rollback of d-1 started delivery d-9 (restores what d-1 changed)\n');
  });

  it('drain and undrain post to the cluster', async () => {
    answer = (_req, res) => json(res, 202, {});
    await run(['drain', 'beijing', '-m', 'rack swap']);
    await run(['undrain', 'beijing']);
    expect(api.requests.map((r) => [r.url, r.body])).toEqual([
      ['/v1/clusters/beijing/actions', { action: 'drain', comment: 'rack swap' }],
      ['/v1/clusters/beijing/actions', { action: 'undrain' }],
    ]);
  });

  it('failover and failback post to the cluster and say where it stands; clusters shows health, last probe and failover', async () => {
    answer = (req, res) =>
      req.url === '/v1/clusters'
        ? json(res, 200, {
            settings: {},
            events: [],
            items: [
              { name: 'beijing', region: 'cn-north', health: 'Unhealthy', since: '2026-11-25T06:00:00.000Z', lastProbe: { at: 'x', ok: false, latencyMs: 2001, message: 'no answer in 2000 ms' }, drained: false, failover: { phase: 'FailedOver', to: ['shenzhen', 'cloud-hk'] } },
              { name: 'shenzhen', region: 'cn-south', health: 'Healthy', since: '2026-11-25T05:00:00.000Z', lastProbe: { at: 'x', ok: true, latencyMs: 3 }, drained: false },
            ],
          })
        : json(res, 200, { name: 'beijing', health: 'Healthy', drained: false, failover: { id: 'failback-beijing-1', phase: 'FailingBack' } });
    const f = await run(['failback', 'beijing', '-m', 'ticket 9']);
    expect(f.stdout).toBe('failback of beijing: done; beijing is Healthy, FailingBack (failback-beijing-1)\n');
    await run(['failover', 'shenzhen']);
    expect(api.requests.map((r) => [r.url, r.body])).toEqual([
      ['/v1/clusters/beijing/actions', { action: 'failback', comment: 'ticket 9' }],
      ['/v1/clusters/shenzhen/actions', { action: 'failover' }],
    ]);
    const lines = (await run(['clusters'])).stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+REGION\s+HEALTH\s+SINCE\s+LAST PROBE\s+DRAINED\s+FAILOVER/);
    expect(lines[1]).toMatch(/beijing\s+cn-north\s+Unhealthy\s+2026-11-25T06:00:00.000Z\s+failed 2001ms \(no answer in 2000 ms\)\s+no\s+FailedOver -> shenzhen,cloud-hk/);
    expect(lines[2]).toMatch(/shenzhen\s+cn-south\s+Healthy\s+.*ok 3ms\s+no/);
  });
});

describe('reading', () => {
  it('list passes --app, --phase and --limit as the query; app passes the namespace', async () => {
    answer = (req, res) =>
      req.url.startsWith('/v1/apps')
        ? json(res, 200, { name: 'web', namespace: 'shop', clusters: {}, deliveries: [] })
        : json(res, 200, { items: [{ id: 'd-1', app: 'shop/web', type: 'deploy', phase: 'Healthy', image: 'reg/web:v2', startedAt: '2026-11-24T10:00:00.123Z', requestedBy: 'ci' }] });
    const list = await run(['list', '--app', 'shop/web', '--phase', 'Healthy', '--limit', '5']);
    await run(['list']);
    await run(['app', 'web', '-n', 'shop']);
    await run(['app', 'web']);
    expect(api.requests.map((r) => r.url)).toEqual([
      '/v1/deliveries?app=shop%2Fweb&phase=Healthy&limit=5',
      '/v1/deliveries',
      '/v1/apps/web?namespace=shop',
      '/v1/apps/web?namespace=default',
    ]);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+APP\s+TYPE\s+PHASE\s+IMAGE\s+STARTED\s+BY$/);
    expect(list.stdout).toContain('d-1  shop/web  deploy  Healthy  reg/web:v2  2026-11-24 10:00:00Z  ci');
  });

  it('--output json prints the API\'s JSON as it came', async () => {
    const body = status('Healthy', { extraFieldOfANewerServer: { x: 1 } });
    answer = (_req, res) => json(res, 200, body);
    const r = await run(['-o', 'json', 'status', 'd-1']);
    expect(JSON.parse(r.stdout)).toEqual(body);
  });

  it('status prints the phase, each wave and cluster', async () => {
    answer = (_req, res) => json(res, 200, status('Healthy'));
    const r = await run(['status', 'd-1']);
    expect(r.stdout).toContain('phase:    Healthy: it is Healthy');
    expect(r.stdout).toMatch(/wave 1\/1 {2}\(current\)\n {2}beijing {3}Healthy {7}2\/2 ready/);
  });
});

describe('errors and usage', () => {
  it('an API error is one line naming the field, with status, code and request id; exit 1', async () => {
    answer = (_req, res) =>
      json(res, 400, {
        error: 'InvalidRequest',
        message: 'the request body is malformed: app.replicas: expected number, received string',
        details: [{ path: 'app.replicas', message: 'expected number, received string' }],
        requestId: 'req-42',
      });
    const r = await run(['deploy', '-f', 'spec.yaml']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: app.replicas: expected number, received string (400 InvalidRequest, request req-42)\n' });
  });

  it('a route the API does not serve says so; a 401 says where the token came from; the token is never printed', async () => {
    answer = (req, res) =>
      req.url === '/v1/clusters'
        ? json(res, 404, { error: 'NotFound', message: 'no route GET /v1/clusters', details: [], requestId: 'r1' })
        : json(res, 401, { error: 'Unauthorized', message: 'unknown bearer token', details: [], requestId: 'r2' });
    const clusters = await run(['clusters']);
    expect(clusters.stderr).toBe('error: this API does not serve GET /v1/clusters (yet): no route GET /v1/clusters (404 NotFound, request r1)\n');
    const list = await run(['list']);
    expect(list.stderr).toBe('error: unknown bearer token (401 Unauthorized, request r2); the token from --token was refused\n');
    const noToken = await cli(['--api', api.url, 'list'], { cwd: dir });
    expect(noToken.stderr).toContain('no token was found: pass --token, set FLOTILLA_TOKEN');
    for (const r of [clusters, list, noToken]) {
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).not.toContain(TOKEN);
    }
    const config = await run(['config']);
    expect(config.stdout).toBe(`api:   ${api.url}  (from --api)\ntoken: from --token\n`);
  });

  it('an API that is not there is one line, exit 1', async () => {
    const gone = await recorder(() => {});
    await gone.close(); // a port nothing listens on
    const r = await cli(['--api', gone.url, '--token', TOKEN, 'list'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: cannot reach the API at ${gone.url} (GET /v1/deliveries): ECONNREFUSED\n`);
  });

  it('usage errors exit 1 before any request: a missing option, a bad --timeout, an unknown command or output', async () => {
    const cases = [
      ['deploy'],
      ['deploy', '-f', 'spec.yaml', '--wait', '--timeout', 'soon'],
      ['approve', 'd-1'],
      ['list', '--limit', '0'],
      ['frobnicate'],
      ['-o', 'yaml', 'list'],
      ['status'],
    ];
    for (const c of cases) {
      const r = await run(c);
      expect(r.code, c.join(' ')).toBe(1);
      expect(r.stderr, c.join(' ')).toMatch(/error: /);
    }
    expect(api.requests).toEqual([]);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
  });
});
