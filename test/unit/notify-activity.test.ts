/**
 * The notify activity (in the SDK's MockActivityEnvironment, which gives it a
 * real activity context) against a real HTTP receiver on 127.0.0.1 that
 * verifies every signature with verifySignature: what each sink gets, and how
 * each answer becomes a typed failure Temporal acts on. The retries
 * themselves, by a real Temporal worker: test/integration/notify-webhook.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createNotifyActivities, type NotifyResult } from '../../activities/notify/activities.ts';
import { NotifyFailure } from '../../activities/notify/options.ts';
import { parseNotifyConfig } from '../../activities/notify/config.ts';
import type { FlotillaEventInput } from '../../activities/notify/events.ts';
import { verifySignature } from '../../activities/notify/sign.ts';

const SECRET = 'notify-unit-secret-0123456789';
const log = pino({ level: 'silent' });

interface Got {
  path: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  verified: boolean;
}
let got: Got[] = [];
let server: Server;
let base: string;
let closedPort: string;

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const verified = verifySignature({ body, header: req.headers['flotilla-signature'], secret: SECRET }).ok;
    got.push({ path: req.url!, body, headers: req.headers, verified });
    if (!verified) return res.writeHead(401).end();
    const status = Number(/^\/(\d{3})/.exec(req.url!)?.[1] ?? 200);
    res.writeHead(status, status === 429 ? { 'Retry-After': '7' } : {}).end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gone = createServer();
  await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
  closedPort = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
  await new Promise((r) => gone.close(r));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  got = [];
});

const event: FlotillaEventInput = {
  type: 'delivery.failed',
  id: 'delivery-1/failed',
  at: '2026-11-24T10:00:00Z',
  deliveryId: 'delivery-1',
  app: { namespace: 'shop', name: 'web' },
  phase: 'Degraded',
  message: 'wave 1 failed',
  clusters: [{ cluster: 'beijing', phase: 'Failed', failureType: 'RolloutFailed' }],
};

function activities(sinks: { name: string; path: string; events?: string[]; format?: string; url?: string }[]) {
  const config = parseNotifyConfig({
    sinks: sinks.map((s) => ({ name: s.name, url: s.url ?? `${base}${s.path}`, secret: { env: 'HOOK_SECRET' }, ...(s.events ? { events: s.events } : {}), ...(s.format ? { format: s.format } : {}), timeout: '5s' })),
  });
  return createNotifyActivities({ config, logger: log, env: { HOOK_SECRET: SECRET } });
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ApplicationFailure);
  return e as ApplicationFailure;
}

describe('sending', () => {
  it('each subscribed sink gets the event signed, in its format, with the event id and type; others get nothing', async () => {
    const acts = activities([
      { name: 'ops', path: '/ops/secret-path' },
      { name: 'chat', path: '/chat', format: 'slack', events: ['delivery.failed', 'delivery.finished'] },
      { name: 'gates', path: '/gates', events: ['gate.waiting'] },
    ]);
    const result = await new MockActivityEnvironment({ attempt: 1 }).run(acts.notify, { event });
    expect(result).toEqual({ eventId: 'delivery-1/failed', delivered: expect.arrayContaining(['ops', 'chat']), attempt: 1 });
    expect(got.map((g) => [g.path, g.verified]).sort()).toEqual([
      ['/chat', true],
      ['/ops/secret-path', true],
    ]);
    const ops = got.find((g) => g.path.startsWith('/ops'))!;
    expect(JSON.parse(ops.body)).toEqual(event);
    expect(ops.headers['flotilla-event-id']).toBe('delivery-1/failed');
    expect(ops.headers['flotilla-event']).toBe('delivery.failed');
    expect(ops.headers['content-type']).toBe('application/json');
    const chat = JSON.parse(got.find((g) => g.path === '/chat')!.body) as { text: string; blocks: unknown[] };
    expect(chat.text).toBe('Delivery of shop/web ended Degraded (beijing: RolloutFailed)');
    expect(chat.blocks).toHaveLength(2);
  });

  it('a retry sends only to the sinks the heartbeat does not list as done', async () => {
    const acts = activities([
      { name: 'ops', path: '/ops' },
      { name: 'chat', path: '/chat' },
    ]);
    const env = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { delivered: ['ops'], rejected: [] } });
    const result = (await env.run(acts.notify, { event })) as NotifyResult;
    expect(got.map((g) => g.path)).toEqual(['/chat']);
    expect(result.delivered).toEqual(['ops', 'chat']);
    expect(result.attempt).toBe(2);
  });
});

describe('failures Temporal acts on', () => {
  it('5xx and a refused connection: NotificationFailed, retryable, naming sink and origin but not the path; the heartbeat keeps what was delivered', async () => {
    const acts = activities([
      { name: 'ops', path: '/ops' },
      { name: 'flaky', path: '/503/token-in-path' },
      { name: 'down', path: '/x', url: `${closedPort}/also-secret` },
    ]);
    const env = new MockActivityEnvironment({ attempt: 1 });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(structuredClone(d)));
    const f = await failure(env.run(acts.notify, { event }));
    expect(f.type).toBe(NotifyFailure.failed);
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain(`flaky (${base}) answered 503`);
    expect(f.message).toContain(`down (${closedPort}): ECONNREFUSED`);
    expect(f.message).not.toMatch(/token-in-path|also-secret/);
    expect(beats.at(-1)).toEqual({ delivered: ['ops'], rejected: [] });
  });

  it('429 is retried after its Retry-After; 4xx is NotificationRejected, not retryable, and not sent again', async () => {
    const limited = await failure(new MockActivityEnvironment().run(activities([{ name: 'busy', path: '/429' }]).notify, { event }));
    expect(limited.type).toBe(NotifyFailure.failed);
    expect(limited.nextRetryDelay).toBe(7000);

    const acts = activities([
      { name: 'ops', path: '/ops' },
      { name: 'strict', path: '/422' },
    ]);
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(structuredClone(d)));
    const rejected = await failure(env.run(acts.notify, { event }));
    expect(rejected.type).toBe(NotifyFailure.rejected);
    expect(rejected.nonRetryable).toBe(true);
    expect(rejected.message).toBe(`event delivery-1/failed refused: strict (${base}) answered 422 (delivered to ops)`);
    // Had another sink asked for a retry, the next attempt would skip both.
    got = [];
    const next = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: beats.at(-1) });
    await failure(next.run(acts.notify, { event }));
    expect(got).toEqual([]);
  });

  it('a receiver with another secret refuses (401): NotificationRejected', async () => {
    const config = parseNotifyConfig({ sinks: [{ name: 'ops', url: `${base}/ops`, secret: { env: 'HOOK_SECRET' } }] });
    const acts = createNotifyActivities({ config, logger: log, env: { HOOK_SECRET: 'not-the-receivers-secret' } });
    const f = await failure(new MockActivityEnvironment().run(acts.notify, { event }));
    expect(f.type).toBe(NotifyFailure.rejected);
    expect(got[0]!.verified).toBe(false);
  });

  it('an event that does not match its schema: InvalidNotification, nothing sent', async () => {
    const f = await failure(new MockActivityEnvironment().run(activities([{ name: 'ops', path: '/ops' }]).notify, { event: { ...event, phase: 'Healthy' } as unknown as FlotillaEventInput }));
    expect(f.type).toBe(NotifyFailure.invalid);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/^the event does not match its schema: phase: /);
    expect(got).toEqual([]);
  });
});
