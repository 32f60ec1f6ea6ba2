/**
 * The HTTP API against a real Temporal dev server running the real deploy and
 * application workflows, with in-memory clusters (test/workflows/harness.ts).
 * Each test uses its own Kubernetes namespace, so the application workflows
 * (and their locks) of one test never meet another's.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import type { DeliveryStatus } from '../../model/index.ts';
import type { AppState } from '../../workflows/messages.ts';
import { createApp } from '../../api/app.ts';
import { CI, SRE, VIEWER, tokens } from '../support/tokens.ts';
import { createLogger } from '../../api/logger.ts';
import { bundle, eventually, pinned, startFleet, type Fleet } from './harness.ts';


let fleet: Fleet;
let api: Express;

beforeAll(async () => {
  fleet = await startFleet(inject('temporalAddress'), await bundle());
  api = createApp({
    temporal: fleet.client,
    inventory: fleet.info,
    tokens,
    logger: createLogger('silent'),
    taskQueue: fleet.taskQueue,
  });
});
afterAll(async () => {
  await fleet?.stop();
});

let seq = 0;
const freshNamespace = () => `api-${Date.now().toString(36)}-${seq++}`;

function deployBody(namespace: string, image: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'deploy',
    app: {
      name: 'web',
      namespace,
      image,
      replicas: 8,
      placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] },
    },
    waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    onFailure: 'pause',
    ...extra,
  };
}

const post = (body: object, auth = CI, key?: string) => {
  const r = request(api).post('/v1/deliveries').set('Authorization', auth);
  return (key ? r.set('Idempotency-Key', key) : r).send(body);
};
const getStatus = async (id: string): Promise<DeliveryStatus> => {
  const res = await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as DeliveryStatus;
};
const untilPhase = (id: string, phases: string[]) =>
  eventually(
    () => getStatus(id),
    (s) => phases.includes(s.phase),
  );
const act = (id: string, body: object, key?: string) => {
  const r = request(api).post(`/v1/deliveries/${id}/actions`).set('Authorization', SRE);
  return (key ? r.set('Idempotency-Key', key) : r).send(body);
};
const imagesIn = (ns: string) => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.image(ns)]));
const replicasIn = (ns: string) => Object.fromEntries(Object.entries(fleet.clusters).map(([n, c]) => [n, c.replicas(ns)]));
const appState = async (ns: string): Promise<AppState> => {
  const res = await request(api).get(`/v1/apps/web?namespace=${ns}`).set('Authorization', VIEWER);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as AppState;
};

describe('HTTP API on a real Temporal server', () => {
  it('delivers to three clusters in two waves: 202 with Location, status until Healthy, list, and where the app runs', async () => {
    const ns = freshNamespace();
    const res = await post(deployBody(ns, 'central:5000/demo/web:v1'));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.id as string;
    expect(id).toMatch(/^delivery-/);
    expect(res.headers.location).toBe(`/v1/deliveries/${id}`);
    expect(res.body.status).toBe(`/v1/deliveries/${id}`);

    const done = await untilPhase(id, ['Healthy', 'Degraded', 'NeedsAttention', 'RolledBack', 'Aborted']);
    expect(done).toMatchObject({
      id,
      phase: 'Healthy',
      type: 'deploy',
      app: { name: 'web', namespace: ns },
      waves: [['beijing'], ['shenzhen', 'cloud-hk']],
    });
    // What a user checks: every cluster runs the image, with the replicas divided by capacity (2:1:1 of 8).
    const v1 = pinned('central:5000/demo/web:v1');
    expect(imagesIn(ns)).toEqual({ beijing: v1, shenzhen: v1, 'cloud-hk': v1 });
    expect(res.body.digests).toEqual({ 'central:5000/demo/web:v1': v1.split('@')[1] });
    expect(replicasIn(ns)).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 });

    const app = await eventually(
      () => appState(ns),
      (s) => s.activeDelivery === undefined && s.spec !== undefined,
    );
    expect(app.spec?.image).toBe('central:5000/demo/web:v1');
    expect(Object.keys(app.clusters).sort()).toEqual(['beijing', 'cloud-hk', 'shenzhen']);
    expect(app.deliveries.map((d) => [d.id, d.phase])).toEqual([[id, 'Healthy']]);

    // Visibility is eventually consistent: the search attributes catch up with the workflow.
    const listed = await eventually(
      async () =>
        (await request(api).get(`/v1/deliveries?app=${ns}/web&phase=Healthy`).set('Authorization', VIEWER))
          .body as {
          items: { id: string; phase: string; app: string; type: string; requestedBy?: string }[];
        },
      (b) => b.items.length === 1,
    );
    expect(listed.items[0]).toMatchObject({
      id,
      app: `${ns}/web`,
      phase: 'Healthy',
      type: 'deploy',
      requestedBy: 'gitlab-ci',
      execution: 'COMPLETED',
    });
    const none = await request(api)
      .get(`/v1/deliveries?app=${ns}/web&phase=Degraded`)
      .set('Authorization', VIEWER);
    expect(none.body.items).toEqual([]);

    expect(
      (await request(api).get('/v1/deliveries/delivery-does-not-exist').set('Authorization', VIEWER)).status,
    ).toBe(404);
    expect(
      (await request(api).get(`/v1/apps/web?namespace=${ns}-nope`).set('Authorization', VIEWER)).status,
    ).toBe(404);
    expect((await request(api).get('/readyz')).status).toBe(200);
  });

  it('refuses a second delivery of a running application with 409 naming it; Idempotency-Key returns the same delivery whatever the lock', async () => {
    const ns = freshNamespace();
    const v1 = `central:5000/demo/web:${ns}-v1`;
    fleet.clusters.shenzhen!.badImages.add(pinned(v1)); // wave 2 fails: the delivery waits in NeedsAttention, holding the lock
    const first = await post(deployBody(ns, v1), CI, 'build-1');
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const id = first.body.id as string;
    await untilPhase(id, ['NeedsAttention']);

    const second = await post(deployBody(ns, `central:5000/demo/web:${ns}-v2`));
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({
      error: 'DeliveryInProgress',
      details: { activeDelivery: id, status: `/v1/deliveries/${id}` },
    });
    expect(second.body.message).toContain(id);
    expect(fleet.clusters.beijing!.calls.filter((c) => c.image === pinned(`central:5000/demo/web:${ns}-v2`))).toEqual([]); // nothing of it reached a cluster

    // The same key and caller: the same delivery, 200, while the lock is held by that very delivery.
    const again = await post(deployBody(ns, v1), CI, 'build-1');
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(id);
    expect(again.headers.location).toBe(`/v1/deliveries/${id}`);
    // The same key with another request is a mistake worth telling.
    const other = await post(deployBody(ns, v1, { onFailure: 'fail' }), CI, 'build-1');
    expect(other.status).toBe(422);
    expect(other.body.error).toBe('IdempotencyKeyReused');
    // The same key from another caller is another delivery: refused by the lock.
    const otherCaller = await post(deployBody(ns, v1), SRE, 'build-1');
    expect(otherCaller.status).toBe(409);

    fleet.clusters.shenzhen!.badImages.delete(pinned(v1));
    const retried = await act(id, { action: 'retry', comment: 'image fixed' });
    expect(retried.status).toBe(200);
    await untilPhase(id, ['Healthy']);
    // After it finished, with the lock free: still the same delivery, nothing new starts.
    const later = await post(deployBody(ns, v1), CI, 'build-1');
    expect(later.status).toBe(200);
    expect(later.body.id).toBe(id);
    const app = await eventually(
      () => appState(ns),
      (s) => s.activeDelivery === undefined,
    );
    expect(app.deliveries.map((d) => d.id)).toEqual([id]);
  });

  it('shows how many replicas are ready in a cluster while its rollout is still running', async () => {
    const ns = freshNamespace();
    let release!: () => void;
    fleet.clusters.beijing!.rolloutGate = { ready: 3, release: new Promise<void>((r) => (release = r)) };
    try {
      const res = await post(deployBody(ns, `central:5000/demo/web:${ns}-v1`));
      expect(res.status).toBe(202);
      const mid = await eventually(
        () => getStatus(res.body.id),
        (s) => s.clusters.beijing?.readyReplicas === 3,
      );
      expect(mid.phase).toBe('Progressing');
      expect(mid.clusters.beijing).toMatchObject({ phase: 'Progressing', desiredReplicas: 4, readyReplicas: 3, message: '3 updated replicas available' });
      release();
      const done = await untilPhase(res.body.id, ['Healthy']);
      expect(done.clusters.beijing).toMatchObject({ phase: 'Healthy', readyReplicas: 4 });
    } finally {
      fleet.clusters.beijing!.rolloutGate = undefined;
      release();
    }
  });

  it('frees the lock of a delivery that was terminated by hand, so the next delivery is not refused for ever', async () => {
    const ns = freshNamespace();
    const v1 = `central:5000/demo/web:${ns}-v1`;
    fleet.clusters.shenzhen!.badImages.add(pinned(v1));
    const first = await post(deployBody(ns, v1));
    expect(first.status).toBe(202);
    await untilPhase(first.body.id, ['NeedsAttention']);
    await fleet.client.workflow.getHandle(first.body.id).terminate('operator cleanup'); // never reports to its application
    const second = await post(deployBody(ns, `central:5000/demo/web:${ns}-v2`));
    expect(second.status, JSON.stringify(second.body)).toBe(202);
    const s = await untilPhase(second.body.id, ['Healthy']);
    expect(s.image).toBe(`central:5000/demo/web:${ns}-v2`);
  });

  it('takes SRE actions on a paused delivery: 409 with the reason when they do not apply, 200 with the new status when they do', async () => {
    const ns = freshNamespace();
    const v1 = `central:5000/demo/web:${ns}-v1`;
    fleet.clusters['cloud-hk']!.badImages.add(pinned(v1));
    const id = (await post(deployBody(ns, v1))).body.id as string;
    const paused = await untilPhase(id, ['NeedsAttention']);
    expect(paused.clusters['cloud-hk']).toMatchObject({ phase: 'Failed', failureType: 'RolloutFailed' });

    const noCluster = await act(id, { action: 'skip' });
    expect(noCluster.status).toBe(409);
    expect(noCluster.body).toMatchObject({ error: 'ActionNotApplicable', message: 'skip needs a cluster' });
    const notFailed = await act(id, { action: 'skip', cluster: 'shenzhen' });
    expect(notFailed.status).toBe(409);
    expect(notFailed.body.message).toContain('has not failed');

    const skipped = await act(id, { action: 'skip', cluster: 'cloud-hk', comment: 'hk is being drained' });
    expect(skipped.status, JSON.stringify(skipped.body)).toBe(200);
    expect((skipped.body as DeliveryStatus).clusters['cloud-hk']!.phase).toBe('Skipped');
    const done = await untilPhase(id, ['Healthy']);
    expect(done.audit).toEqual([
      expect.objectContaining({
        who: 'alice',
        action: 'skip',
        cluster: 'cloud-hk',
        comment: 'hk is being drained',
      }),
    ]);
    expect(imagesIn(ns)).toEqual({ beijing: pinned(v1), shenzhen: pinned(v1), 'cloud-hk': pinned(v1) }); // skipped: left as it was (the failed rollout)

    const finished = await act(id, { action: 'retry' });
    expect(finished.status).toBe(409);
    expect(finished.body).toMatchObject({ error: 'DeliveryFinished' });
    expect((await act('delivery-nope', { action: 'abort' })).status).toBe(404);
    fleet.clusters['cloud-hk']!.badImages.delete(pinned(v1));
  });

  it('keeps as many versions as FLOTILLA_VERSION_HISTORY says: older ones are neither listed nor restorable', async () => {
    const short = createApp({ temporal: fleet.client, inventory: fleet.info, tokens, logger: createLogger('silent'), taskQueue: fleet.taskQueue, versionHistory: 2 });
    const ns = freshNamespace();
    for (const tag of ['v1', 'v2', 'v3']) {
      const image = `central:5000/demo/web:${ns}-${tag}`;
      const res = await request(short).post('/v1/deliveries').set('Authorization', CI).send(deployBody(ns, image, { app: { name: 'web', namespace: ns, image, replicas: 2, placement: { clusters: ['beijing'] } }, waves: undefined }));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      await untilPhase(res.body.id as string, ['Healthy']);
      await eventually(() => appState(ns), (s) => s.activeDelivery === undefined);
    }
    const versions = await request(short).get(`/v1/apps/web/versions?namespace=${ns}`).set('Authorization', VIEWER);
    expect(versions.status).toBe(200);
    expect((versions.body.items as { number: number; image: string }[]).map((v) => [v.number, v.image])).toEqual([
      [3, pinned(`central:5000/demo/web:${ns}-v3`)],
      [2, pinned(`central:5000/demo/web:${ns}-v2`)],
    ]);
    const gone = await request(short).post(`/v1/apps/web/rollback?namespace=${ns}`).set('Authorization', SRE).send({ version: 1 });
    expect(gone.status).toBe(409);
    expect(gone.body).toMatchObject({ error: 'VersionUnavailable', details: { versions: [3, 2] } });
    expect(imagesIn(ns).beijing).toBe(pinned(`central:5000/demo/web:${ns}-v3`));
  });

  it('rolls back a finished delivery by starting one that puts the version before it back on the same clusters', async () => {
    const ns = freshNamespace();
    const v1 = `central:5000/demo/web:${ns}-v1`;
    const v2 = `central:5000/demo/web:${ns}-v2`;
    const d1 = (await post(deployBody(ns, v1))).body.id as string;
    await untilPhase(d1, ['Healthy']);
    await eventually(
      () => appState(ns),
      (s) => s.activeDelivery === undefined,
    );
    const nothingBefore = await act(d1, { action: 'rollback' });
    expect(nothingBefore.status).toBe(409);
    expect(nothingBefore.body.error).toBe('NothingToRollBack');

    const d2 = (
      await post(
        deployBody(ns, v2, {
          app: {
            name: 'web',
            namespace: ns,
            image: v2,
            replicas: 4,
            placement: { clusters: ['beijing', 'shenzhen'] },
          },
          waves: undefined,
        }),
      )
    ).body.id as string;
    await untilPhase(d2, ['Healthy']);
    await eventually(
      () => appState(ns),
      (s) => s.activeDelivery === undefined,
    );
    expect(imagesIn(ns)).toEqual({ beijing: pinned(v2), shenzhen: pinned(v2), 'cloud-hk': pinned(v1) });

    const rb = await act(d2, { action: 'rollback', comment: 'v2 leaks memory' }, 'rb-1');
    expect(rb.status, JSON.stringify(rb.body)).toBe(202);
    expect(rb.body.rollbackOf).toBe(d2);
    const restoreId = rb.body.id as string;
    expect(restoreId).not.toBe(d2);
    const repeated = await act(d2, { action: 'rollback', comment: 'v2 leaks memory' }, 'rb-1');
    expect([200, 202]).toContain(repeated.status);
    expect(repeated.body.id).toBe(restoreId);

    const restored = await untilPhase(restoreId, ['Healthy', 'Degraded', 'NeedsAttention']);
    // Exactly what version 1 rendered: read back from each cluster, pinned as it was.
    expect(restored).toMatchObject({ phase: 'Healthy', type: 'rollback', image: pinned(v1), source: 'version 1' });
    expect(Object.keys(restored.clusters).sort()).toEqual(['beijing', 'shenzhen']); // the clusters d2 changed, no others
    // Back on v1 with the replicas v1 had there (8 over 2:1:1 capacity).
    expect(imagesIn(ns)).toEqual({ beijing: pinned(v1), shenzhen: pinned(v1), 'cloud-hk': pinned(v1) });
    expect(replicasIn(ns)).toEqual({ beijing: 4, shenzhen: 2, 'cloud-hk': 2 });

    const app = await eventually(
      () => appState(ns),
      (s) => s.activeDelivery === undefined,
    );
    expect(app.spec?.image).toBe(v1);
    expect(app.deliveries.map((d) => d.id)).toEqual([restoreId, d2, d1]);
    // d1 is older than what now runs: rolling it back would undo later deliveries.
    const old = await act(d1, { action: 'rollback' });
    expect(old.status).toBe(409);
    expect(old.body).toMatchObject({ error: 'Superseded', details: { laterDelivery: restoreId } });
  });
});

describe('event stream of a delivery (GET /v1/deliveries/{id}/events)', () => {
  type Ev = { id?: string; event?: string; data: string };
  /** Reads server-sent events from a real HTTP connection until `stop` says so (or the server ends the stream). */
  async function read(base: string, id: string, stop: (e: Ev) => boolean, lastEventId?: string): Promise<Ev[]> {
    const { EventSourceParserStream } = await import('eventsource-parser/stream');
    const ctrl = new AbortController();
    const res = await fetch(`${base}/v1/deliveries/${id}/events`, { headers: { Authorization: VIEWER, ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) }, signal: ctrl.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const out: Ev[] = [];
    try {
      for await (const e of res.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream())) {
        out.push({ id: e.id, event: e.event, data: e.data });
        if (stop(out.at(-1)!)) break;
      }
    } finally {
      ctrl.abort();
    }
    return out;
  }

  it('every change in order; a reconnect with Last-Event-ID loses nothing and repeats nothing; end closes it; a fresh reader gets the status first', async () => {
    const server = api.listen(0);
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const ns = freshNamespace();
      expect((await post(deployBody(ns, 'central:5000/demo/web:v1'))).status).toBe(202);

      await eventually(() => appState(ns), (a) => a.activeDelivery === undefined && a.deliveries[0]?.phase === 'Healthy');
      const res = await post(deployBody(ns, 'central:5000/demo/web:v2', { type: 'canary', canary: { steps: [{ setWeight: 50 }, { approval: { name: 'go' } }] } }));
      expect(res.status).toBe(202);
      const id = res.body.id as string;

      // First connection, from the start (Last-Event-ID 0): events up to the gate opening in wave 1; then the reader goes away.
      const first = await read(base, id, (e) => e.event === 'gate' && JSON.parse(e.data).phase === 'Waiting', '0');
      expect(first[0]!.id).toBe('1');
      const gate = JSON.parse(first.at(-1)!.data);
      expect(gate).toMatchObject({ type: 'gate', gate: 'go', wave: 0, phase: 'Waiting' });
      expect(first.map((e) => e.event)).toContain('step');

      // While nobody listens: the approval, the wave's promotion, wave 2 up to its own gate, approved too.
      expect((await act(id, { action: 'approve', gate: 'go' })).status).toBe(200);
      await eventually(() => getStatus(id), (s) => (s.gates ?? []).some((g) => g.wave === 1 && g.state === 'Waiting'));
      expect((await act(id, { action: 'approve', gate: 'go' })).status).toBe(200);

      const second = await read(base, id, () => false, first.at(-1)!.id);
      expect(second.at(-1)!.event).toBe('end');
      expect(JSON.parse(second.at(-1)!.data)).toMatchObject({ type: 'end', phase: 'Healthy' });
      const ids = second.map((e) => Number(e.id));
      expect(ids[0]).toBe(Number(first.at(-1)!.id) + 1); // the next one: nothing lost
      expect(ids).toEqual(ids.map((_, i) => ids[0]! + i)); // consecutive: nothing repeated or skipped
      const kinds = second.map((e) => JSON.parse(e.data) as { type: string; action?: string; gate?: string; phase?: string; cluster?: string; weight?: number });
      expect(kinds.find((k) => k.type === 'action')).toMatchObject({ action: 'approve', gate: 'go' });
      expect(kinds.find((k) => k.type === 'gate')).toMatchObject({ gate: 'go', phase: 'Approved' });
      expect(kinds.some((k) => k.type === 'cluster' && k.cluster === 'shenzhen' && k.weight === 50)).toBe(true);

      // The whole log again from the start: the two connections saw exactly it.
      const all = await read(base, id, () => false, '0');
      expect(all.map((e) => [e.id, e.data])).toEqual([...first, ...second].map((e) => [e.id, e.data]));
      // A finished delivery: its final status, then end at once; a bad cursor is a 400 naming it.
      const done = await read(base, id, () => false);
      expect(done.map((e) => e.event)).toEqual(['status', 'end']);
      expect(JSON.parse(done[0]!.data)).toMatchObject({ phase: 'Healthy' });
      const bad = await fetch(`${base}/v1/deliveries/${id}/events`, { headers: { Authorization: VIEWER, 'Last-Event-ID': 'x' } });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: 'BadRequest', details: [{ path: 'Last-Event-ID' }] });
    } finally {
      server.close();
    }
  });
});
