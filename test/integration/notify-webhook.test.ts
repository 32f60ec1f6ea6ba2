/**
 * Webhook notifications through a real Temporal worker and server (the local
 * stack's), to a real HTTP receiver that verifies each request the way the
 * README tells receivers to (verifySignature over the raw body, a max age):
 * a sink answering 500 is retried by Temporal until it takes the event, the
 * sinks that took it already are not sent it again, a 400 is not retried, a
 * wrong signature and a replay older than the max age are refused, and
 * neither the secret nor the secret part of a URL lands in the history.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createNotifyActivities, type NotifyResult } from '../../activities/notify/activities.ts';
import { parseNotifyConfig } from '../../activities/notify/config.ts';
import type { FlotillaEventInput } from '../../activities/notify/events.ts';
import { signatureHeader, verifySignature } from '../../activities/notify/sign.ts';
import { quietRuntime } from '../support/temporal.ts';

const stack = inject('stack');
const run = randomUUID().slice(0, 8);
const SECRET = `webhook-secret-${randomUUID()}`;
const SECRET_PATH = `T0123/B0456/${randomUUID()}`; // a Slack-style URL whose path is itself a secret
const MAX_AGE = 2;

interface Received {
  path: string;
  raw: string;
  signature: string | undefined;
  status: number;
  reason?: string;
}
const received: Received[] = [];
const failFirst = new Map<string, number>([['/flaky', 2]]);
let receiver: Server;
let receiverUrl: string;
let nativeConnection: NativeConnection;
let client: Client;
let worker: Worker;
let running: Promise<void>;
let workflowBundle: Awaited<ReturnType<typeof bundleWorkflowCode>>;

beforeAll(async () => {
  quietRuntime();
  // The receiver, as a user would write one: raw body, verifySignature with a max age, 401 when it fails.
  receiver = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const signature = req.headers['flotilla-signature'] as string | undefined;
    const check = verifySignature({ body: raw, header: signature, secret: SECRET, maxAgeSeconds: MAX_AGE });
    const route = req.url!.startsWith('/hooks/') ? '/secret-url' : req.url!;
    let status = 200;
    if (!check.ok) status = 401;
    else if (route === '/reject') status = 400;
    else if ((failFirst.get(route) ?? 0) > 0) {
      failFirst.set(route, failFirst.get(route)! - 1);
      status = 500;
    }
    received.push({ path: route, raw, signature, status, ...(check.ok ? {} : { reason: check.reason }) });
    res.writeHead(status, { 'Content-Type': 'text/plain' }).end(check.ok ? 'ok' : check.message);
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  nativeConnection = await NativeConnection.connect({ address: stack.temporal.address });
  client = new Client({ connection: await Connection.connect({ address: stack.temporal.address }), namespace: stack.temporal.namespace });
  workflowBundle = await bundleWorkflowCode({
    workflowsPath: path.resolve(import.meta.dirname, '../support/notify-workflows.ts'),
    logger: new DefaultLogger('WARN'),
  });
  const config = parseNotifyConfig({
    sinks: [
      { name: 'ops', url: `${receiverUrl}/ops`, secret: { env: 'HOOK_SECRET' } },
      { name: 'flaky', url: `${receiverUrl}/flaky`, secret: { env: 'HOOK_SECRET' }, events: ['delivery.failed'] },
      { name: 'chat', url: { env: 'CHAT_URL' }, secret: { env: 'HOOK_SECRET' }, format: 'slack', events: ['delivery.failed'] },
      { name: 'strict', url: `${receiverUrl}/reject`, secret: { env: 'HOOK_SECRET' }, events: ['gate.waiting'] },
    ],
  });
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: stack.temporal.namespace,
    taskQueue: `notify-${run}`,
    workflowBundle,
    activities: createNotifyActivities({
      config,
      logger: pino({ level: 'silent' }),
      env: { HOOK_SECRET: SECRET, CHAT_URL: `${receiverUrl}/hooks/${SECRET_PATH}` },
    }),
  });
  running = worker.run();
});

afterAll(async () => {
  if (worker) {
    worker.shutdown();
    await running;
  }
  await client?.connection.close();
  await nativeConnection?.close();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});

const failedEvent: FlotillaEventInput = {
  type: 'delivery.failed',
  id: `delivery-${run}/failed`,
  at: new Date().toISOString(),
  deliveryId: `delivery-${run}`,
  app: { namespace: 'shop', name: 'web' },
  phase: 'RolledBack',
  image: 'reg/web:v2',
  message: 'wave 2 failed; rolled back',
  clusters: [{ cluster: 'shenzhen', phase: 'Failed', failureType: 'RolloutFailed' }],
};

it('a sink answering 500 is retried by Temporal until it takes the event; the others get it once, signed', async () => {
  const workflowId = `notify-retry-${run}`;
  const result: NotifyResult = await client.workflow.execute('notifyWorkflow', { taskQueue: `notify-${run}`, workflowId, args: [{ event: failedEvent }] });
  expect(result.attempt).toBe(3);
  expect([...result.delivered].sort()).toEqual(['chat', 'flaky', 'ops']);
  const by = (p: string) => received.filter((r) => r.path === p).map((r) => r.status);
  expect(by('/flaky')).toEqual([500, 500, 200]);
  expect(by('/ops')).toEqual([200]);
  expect(by('/secret-url')).toEqual([200]);
  expect(received.every((r) => r.status !== 401)).toBe(true);
  expect(JSON.parse(received.find((r) => r.path === '/ops')!.raw)).toMatchObject({ id: failedEvent.id, type: 'delivery.failed' });
  expect(JSON.parse(received.find((r) => r.path === '/secret-url')!.raw).text).toBe('Delivery of shop/web reg/web:v2 ended RolledBack (shenzhen: RolloutFailed)');

  // Temporal's own record: the attempts failed NotificationFailed, and the secret and the secret URL are nowhere in it.
  const history = JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory());
  expect(history).toContain('NotificationFailed');
  expect(history).not.toContain(SECRET);
  expect(history).not.toContain(SECRET_PATH);
});

it('a sink answering 400 is not retried: the workflow sees NotificationRejected after one request', async () => {
  const before = received.length;
  const event: FlotillaEventInput = { type: 'gate.waiting', id: `delivery-${run}/gate/canary`, at: new Date().toISOString(), deliveryId: `delivery-${run}`, app: { namespace: 'shop', name: 'web' }, gate: 'canary' };
  const err = await client.workflow
    .execute('notifyWorkflow', { taskQueue: `notify-${run}`, workflowId: `notify-reject-${run}`, args: [{ event }] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const activity = (err as WorkflowFailedError).cause;
  expect(activity).toBeInstanceOf(ActivityFailure);
  const app = (activity as ActivityFailure).cause as ApplicationFailure;
  expect(app).toBeInstanceOf(ApplicationFailure);
  expect(app.type).toBe('NotificationRejected');
  expect(app.nonRetryable).toBe(true);
  expect(app.message).toContain(`strict (${receiverUrl}) answered 400`);
  const sent = received.slice(before);
  expect(sent.map((r) => [r.path, r.status]).sort()).toEqual([
    ['/ops', 200],
    ['/reject', 400],
  ]);
});

it("the receiver's verification refuses a wrong signature and a replay older than its max age", async () => {
  const captured = received.find((r) => r.path === '/ops')!;
  const post = (body: string, signature: string) =>
    fetch(`${receiverUrl}/ops`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Flotilla-Signature': signature }, body });
  const now = Math.floor(Date.now() / 1000);
  const forged = await post(captured.raw, signatureHeader('a-guessed-secret', now, captured.raw));
  expect(forged.status).toBe(401);
  const tampered = await post(captured.raw.replace('RolledBack', 'Healthy'), signatureHeader(SECRET, now, captured.raw));
  expect(tampered.status).toBe(401);
  // The same body signed now with the right secret passes: the refusals above are the signature's doing.
  expect((await post(captured.raw, signatureHeader(SECRET, now, captured.raw))).status).toBe(200);
  // The captured request, replayed as it was once its timestamp is older than the max age.
  const signedAt = Number(/t=(\d+)/.exec(captured.signature!)![1]);
  await new Promise((r) => setTimeout(r, Math.max(0, (signedAt + MAX_AGE + 1) * 1000 - Date.now())));
  const replay = await post(captured.raw, captured.signature!);
  expect(replay.status).toBe(401);
  expect(await replay.text()).toMatch(/^signed \d+s ago; at most 2s is accepted \(a replay\?\)$/);
  expect(received.slice(-4).map((r) => r.reason)).toEqual(['mismatch', 'mismatch', undefined, 'expired']);
});
