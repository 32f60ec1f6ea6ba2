/**
 * --watch and --wait over HTTP against a real server on 127.0.0.1 that plays
 * a delivery: the event stream (statuses as server-sent events, a connection
 * cut short and resumed with Last-Event-ID, a finer-grained event that makes
 * the CLI read the status), the fallback to polling where the stream is not
 * served, an API away for a moment, and each exit code.
 */
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { cli, json, recorder, type Recorded, type Recorder } from './cli-helpers.ts';

const TOKEN = 'watch-token-0123456789abcdef';
let api: Recorder | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const st = (phase: string, ready: number, extra: Record<string, unknown> = {}) => ({
  id: 'd-1',
  type: 'deploy',
  app: { name: 'web', namespace: 'shop' },
  image: 'reg/web:v2',
  phase,
  message: `now ${phase}`,
  currentWave: 0,
  waves: [['beijing']],
  steps: ['apply', 'wait'],
  clusters: { beijing: { cluster: 'beijing', wave: 0, phase: phase === 'Healthy' ? 'Healthy' : phase === 'Degraded' ? 'Failed' : 'Progressing', desiredReplicas: 2, readyReplicas: ready, step: 1 } },
  audit: [],
  ...extra,
});

const sse = (res: ServerResponse, events: { id?: string; event?: string; data: unknown }[], end: boolean) => {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.write('retry: 100\n\n');
  for (const e of events) res.write(`${e.id ? `id: ${e.id}\n` : ''}${e.event ? `event: ${e.event}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`);
  if (end) res.end();
};

const watch = (url: string, extra: string[] = []) => cli(['--api', url, '--token', TOKEN, 'status', 'd-1', '--watch', ...extra]);
const gets = (reqs: Recorded[]) => reqs.filter((r) => r.url === '/v1/deliveries/d-1').length;

describe('the event stream', () => {
  it('follows statuses as they come, reconnects with Last-Event-ID after a cut, and exits 0 on Healthy', async () => {
    let connects = 0;
    api = await recorder((req, res) => {
      if (req.url === '/v1/deliveries/d-1') return json(res, 200, st('Progressing', 0));
      if (req.url !== '/v1/deliveries/d-1/events') return json(res, 404, {});
      connects++;
      if (connects === 1) {
        sse(res, [{ id: '1', event: 'status', data: st('Progressing', 0) }, { id: '2', event: 'status', data: st('Progressing', 1) }], false);
        setTimeout(() => res.socket?.destroy(), 100); // cut short mid-delivery
      } else {
        sse(res, [{ id: '3', event: 'status', data: st('Healthy', 2) }, { event: 'end', data: {} }], true);
      }
    });
    const r = await watch(api.url);
    expect(r.code, r.stderr).toBe(0);
    const events = api.requests.filter((q) => q.url.endsWith('/events'));
    expect(events.map((q) => q.headers['last-event-id'])).toEqual([undefined, '2']);
    expect(events.every((q) => q.headers.accept === 'text/event-stream' && q.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    // The statuses came by the stream: one GET at the start only (Healthy ends it before `end`).
    expect(gets(api.requests)).toBe(1);
    expect(r.stdout).toMatch(/\] {3}beijing {3}Progressing {3}wait \(2\/2\) {4}1\/2 ready\n/);
    expect(r.stdout).toMatch(/\] Healthy: now Healthy\n/);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('Healthy: now Healthy (delivery d-1)');
    expect(r.stderr).toBe('');
  });

  it('an event that is not a whole status makes the CLI read the status', async () => {
    let reads = 0;
    api = await recorder((req, res) => {
      if (req.url === '/v1/deliveries/d-1') return json(res, 200, ++reads === 1 ? st('Progressing', 0) : st('Degraded', 0));
      sse(res, [{ id: '7', event: 'cluster', data: { cluster: 'beijing', phase: 'Failed' } }], false);
    });
    const r = await watch(api.url);
    expect(r.code).toBe(2);
    expect(reads).toBe(2);
    expect(r.stdout).toContain('Degraded: now Degraded (delivery d-1)');
  });
});

describe('polling when there is no stream', () => {
  it('a 404 on the stream means polling every interval; an API away for a moment is waited out; Degraded exits 2', async () => {
    let reads = 0;
    api = await recorder((req, res) => {
      if (req.url.endsWith('/events')) return json(res, 404, { error: 'NotFound', message: 'no route GET /v1/deliveries/d-1/events', details: [] });
      reads++;
      if (reads === 3) return json(res, 503, { error: 'TemporalUnavailable', message: 'try again', details: [] });
      return json(res, 200, reads < 5 ? st('Progressing', reads >= 4 ? 1 : 0) : st('Degraded', 1));
    });
    const r = await watch(api.url);
    expect(r.code).toBe(2);
    expect(reads).toBe(5);
    expect(r.stderr).toContain('note: this API has no event stream for deliveries (404); polling every 0.05s\n');
    expect(r.stderr).toContain('note: the API answered 503 TemporalUnavailable: try again; trying again for up to 60s\n');
    expect(r.stdout.trimEnd().split('\n').at(-2)).toBe('Degraded: now Degraded (delivery d-1)');
  });

  it('--poll never asks for the stream; --fail-on-pause exits 3 on NeedsAttention', async () => {
    api = await recorder((req, res) => json(res, 200, st('NeedsAttention', 0)));
    const r = await watch(api.url, ['--poll', '--fail-on-pause']);
    expect(r.code).toBe(3);
    expect(api.requests.map((q) => q.url)).toEqual(['/v1/deliveries/d-1']);
    expect(r.stdout).toContain('waiting for an SRE: flotilla retry|skip|rollback|abort d-1');
  });

  it('--timeout gives up with exit 4 and says the delivery goes on', async () => {
    api = await recorder((req, res) => json(res, 200, st('Progressing', 0)));
    const r = await watch(api.url, ['--poll', '--timeout', '1s']);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/timed out after 1\.\ds: delivery d-1 is still Progressing \(it goes on/);
  });

  it('an unknown delivery is one line, exit 1', async () => {
    api = await recorder((req, res) => json(res, 404, { error: 'NotFound', message: 'no delivery d-1', details: [], requestId: 'q' }));
    const r = await watch(api.url);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: no delivery d-1 (404 NotFound, request q)\n' });
  });
});

describe('--wait with --output json', () => {
  it('prints the start answer\'s progress on stderr and only the final status, as JSON, on stdout', async () => {
    let reads = 0;
    api = await recorder((req, res) => {
      if (req.method === 'POST') return json(res, 202, { id: 'd-1', status: '/v1/deliveries/d-1' });
      if (req.url.endsWith('/events')) return json(res, 404, {});
      return json(res, 200, ++reads < 3 ? st('Progressing', reads - 1) : st('Healthy', 2));
    });
    const r = await cli(['--api', api.url, '--token', TOKEN, '-o', 'json', 'deploy', '-f', '-', '--wait'], { stdin: 'app: {name: web}' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(st('Healthy', 2));
    expect(r.stderr).toContain('Healthy: now Healthy (delivery d-1)');
  });
});
