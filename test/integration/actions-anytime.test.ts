/**
 * rollback and abort sent at every kind of moment of a two-wave delivery, on
 * the real stack through the HTTP API: while it plans, while an apply is held
 * open (not landed yet, or landed with its answer lost, through the stack's
 * API-server proxy), while a rollout is being waited for, and while it waits
 * for an SRE. After rollback every cluster is exactly as it was before the
 * delivery; after abort the status says what each cluster really runs. Both
 * are read straight from each API server (past the proxy).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import request from 'supertest';
import type { Express } from 'express';
import { pino } from 'pino';
import { Client, Connection } from '@temporalio/client';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { Copier, RegistryPool } from '../../activities/registry/index.ts';
import type { DeliveryStatus } from '../../model/index.ts';
import { proxyRules, stackOptions } from '../../stack/index.ts';
import { parseConfig } from '../../worker/config.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { CI, SRE, VIEWER, tokens } from '../support/tokens.ts';
import { cordon, deleteNamespaces, runInventory, until } from './support.ts';

const stack = inject('stack');
const opts = stackOptions(stack);
const inventory = runInventory(stack);
const central = stack.registries.find((r) => r.region === 'central')!.host;
const image = (tag: string) => `${central}/demo/web:${tag}`;
const CLUSTERS = ['beijing', 'shenzhen', 'cloud-hk'];
/** Each of the 5 moments with both actions; FLOTILLA_ACTIONS_RUNS=20 (or more) draws more moments inside each. */
const RUNS = Number(process.env.FLOTILLA_ACTIONS_RUNS ?? 10);

let workers: WorkersHandle;
let connection: Connection;
let api: Express;
/** Straight to each API server: the truth, whatever the proxy is told to do. */
const direct = new Map<string, ClusterClients>();
const namespaces = new Set<string>();

/** Resolutions of image digests still to let through before the next ones are held (the planning moment). */
const planning = { passes: Infinity, release: undefined as (() => void) | undefined, held: false };

beforeAll(async () => {
  const silent = createLogger('silent');
  const copier = new Copier(new RegistryPool(inventory.registries, {}, pino({ level: 'silent' })));
  const resolveDigest = async (ref: string): Promise<string> => {
    if (planning.passes-- <= 0) {
      planning.held = true;
      await new Promise<void>((r) => (planning.release = r));
      planning.held = false;
    }
    return (await copier.resolveDigest(ref)).digest;
  };
  const config = parseConfig({
    temporal: { address: stack.temporal.address, namespace: stack.temporal.namespace },
    inventoryPath: '(given)',
    logLevel: 'silent',
    shutdownGraceMs: 2_000,
  });
  workers = await startWorkers(config, { inventory, logger: silent, resolveDigest });
  connection = await Connection.connect({ address: stack.temporal.address });
  api = createApp({ temporal: new Client({ connection, namespace: stack.temporal.namespace }), inventory, tokens, logger: silent });
  for (const c of stack.clusters) direct.set(c.name, createClusterClients({ name: c.name, kubeconfig: { path: c.directKubeconfig! } }, { requestTimeoutMs: 5_000 }));
});

afterAll(async () => {
  for (const c of CLUSTERS) await proxyRules(c, [], opts).catch(() => undefined);
  await cordon(direct.get('shenzhen')!, false).catch(() => undefined);
  await deleteNamespaces(direct, namespaces);
  await workers?.shutdown();
  await connection?.close();
});

const body = (ns: string, tag: string, replicas: number, port: number, extra: Record<string, unknown> = {}) => ({
  type: 'deploy',
  app: { name: 'web', namespace: ns, image: image(tag), replicas, placement: { clusters: CLUSTERS }, template: { ports: [{ name: 'http', containerPort: port }] } },
  waves: [['beijing'], ['shenzhen', 'cloud-hk']],
  onFailure: 'pause',
  rolloutTimeout: '3m',
  ...extra,
});
const statusOf = async (id: string): Promise<DeliveryStatus> => {
  const res = await request(api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
  if (res.status !== 200) throw new Error(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as DeliveryStatus;
};
const finished = ['Healthy', 'Degraded', 'Aborted', 'RolledBack'];

/** What a user would compare: per cluster, the Deployment (image, replicas, ready) and the Service (ports, selector). */
async function truth(ns: string) {
  const out: Record<string, unknown> = {};
  for (const [name, c] of direct) {
    const d = await c.apps.readNamespacedDeployment({ name: 'web', namespace: ns }).catch(() => undefined);
    const s = await c.core.readNamespacedService({ name: 'web', namespace: ns }).catch(() => undefined);
    out[name] = {
      image: d?.spec?.template.spec?.containers[0]?.image ?? null,
      replicas: d?.spec?.replicas ?? null,
      ready: d?.status?.readyReplicas ?? 0,
      ports: s?.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]) ?? null,
      selector: s?.spec?.selector ?? null,
    };
  }
  return out;
}

type Moment = 'planning' | 'apply-not-landed' | 'apply-answer-lost' | 'waiting' | 'paused';
/** The delivery's own apply of the Deployment (not the preflight's dry-run of it). */
const APPLY_DEPLOYMENT = '/deployments/web\\?((?!dryRun).)*$';
const MOMENTS: Moment[] = ['planning', 'apply-not-landed', 'apply-answer-lost', 'waiting', 'paused'];

/** A seeded generator, so a failing run can be replayed (the seed is in the test name). */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => ((x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}
const SEED = Number(process.env.FLOTILLA_ACTIONS_SEED ?? Date.now() % 100_000);

describe(`rollback and abort at any moment of a two-wave delivery (${RUNS} runs, seed ${SEED})`, () => {
  const random = rng(SEED);
  const runs = Array.from({ length: RUNS }, (_, i) => ({ i, moment: MOMENTS[i % MOMENTS.length]!, action: i % 2 === 0 ? 'rollback' : 'abort' }));

  it.each(runs)('run $i: $action while $moment', async ({ moment, action }) => {
    const ns = `any-${moment.replace(/-.*/, '')}-${randomUUID().slice(0, 6)}`;
    namespaces.add(ns);
    const base = await request(api).post('/v1/deliveries').set('Authorization', CI).send(body(ns, 'v1', 4, 8080, { waves: undefined }));
    expect(base.status, JSON.stringify(base.body)).toBe(202);
    expect((await until(() => statusOf(base.body.id), (s) => finished.includes(s.phase), 'baseline')).phase).toBe('Healthy');
    const before = await truth(ns);

    const shenzhen = direct.get('shenzhen')!;
    const extra: Record<string, unknown> = {};
    if (moment === 'planning') planning.passes = 1; // the preflight resolves; the delivery's own planning is held
    if (moment === 'apply-not-landed') await proxyRules('shenzhen', [{ action: 'delay', method: 'PATCH', path: APPLY_DEPLOYMENT, delayMs: 120_000, count: 1 }], opts);
    if (moment === 'apply-answer-lost') await proxyRules('shenzhen', [{ action: 'drop-reply', method: 'PATCH', path: APPLY_DEPLOYMENT, count: 1 }], opts);
    if (moment === 'waiting' || moment === 'paused') await cordon(shenzhen, true);
    if (moment === 'paused') extra.grace = { unschedulable: '3s' };
    try {
      const res = await request(api).post('/v1/deliveries').set('Authorization', CI).send(body(ns, 'v2', 6, 9090, extra));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const id = res.body.id as string;
      const reached: Record<Moment, (s: DeliveryStatus) => boolean> = {
        planning: () => planning.held,
        'apply-not-landed': (s) => s.clusters.shenzhen?.phase === 'Applying' && /applying/.test(s.clusters.shenzhen.message),
        'apply-answer-lost': (s) => s.clusters.shenzhen?.phase === 'Applying',
        waiting: (s) => s.clusters.shenzhen?.phase === 'Progressing',
        paused: (s) => s.phase === 'NeedsAttention',
      };
      await until(() => statusOf(id), reached[moment], `delivery ${id} ${moment}`, 120_000);
      if (moment === 'apply-answer-lost') {
        // The PATCH has landed in shenzhen, its answer is held: the apply is still in flight.
        await until(async () => (await shenzhen.apps.readNamespacedDeployment({ name: 'web', namespace: ns })).spec?.replicas, (r) => r === 2, 'apply landed in shenzhen (replicas 1 -> 2)', 30_000);
        expect((await statusOf(id)).clusters.shenzhen?.phase).toBe('Applying');
      }
      await new Promise((r) => setTimeout(r, Math.floor(random() * 800))); // somewhere inside that moment
      const act = await request(api).post(`/v1/deliveries/${id}/actions`).set('Authorization', SRE).send({ action, comment: `${action} while ${moment}` });
      expect(act.status, JSON.stringify(act.body)).toBe(200);
      planning.release?.();
      planning.release = undefined;
      planning.passes = Infinity;
      if (moment.startsWith('apply')) await proxyRules('shenzhen', [], opts);
      if (moment === 'waiting' || moment === 'paused') await cordon(shenzhen, false);
      const final = await until(() => statusOf(id), (s) => finished.includes(s.phase), `delivery ${id} finished`, 180_000);

      if (action === 'rollback') {
        expect(final.phase, final.message).toBe('RolledBack');
        // Exactly as before the delivery: image, replicas (all ready again), Service ports and selector.
        const after = await until(() => truth(ns), (t) => JSON.stringify(t) === JSON.stringify(before), 'every cluster as before', 90_000).catch(async () => truth(ns));
        expect(after).toEqual(before);
      } else {
        expect(final.phase, final.message).toBe('Aborted');
        const now = (await truth(ns)) as Record<string, { image: string | null; replicas: number | null }>;
        for (const [name, c] of Object.entries(final.clusters)) {
          // No cluster is left in a step that no longer runs, and what the status says runs there is what runs there.
          expect([name, ['Applying', 'Progressing', 'RollingBack'].includes(c.phase)]).toEqual([name, false]);
          expect([name, c.observed?.image ?? null, c.observed?.replicas ?? null]).toEqual([name, now[name]!.image, now[name]!.replicas]);
        }
        if (moment === 'planning') {
          // Nothing was touched: image, replicas, Service ports and selector at once. Readiness is the
          // cluster's own (a fake node's late heartbeat on a loaded machine can flip a pod NotReady for
          // a moment, as a CI run once saw), so it is compared once it has settled.
          const touched = (t: Awaited<ReturnType<typeof truth>>) => JSON.stringify(Object.entries(t).map(([k, v]) => [k, { ...(v as object), ready: undefined }]));
          expect(touched(now)).toEqual(touched(before));
          const settled = await until(() => truth(ns), (t) => JSON.stringify(t) === JSON.stringify(before), 'every cluster as before', 60_000).catch(async () => truth(ns));
          expect(settled).toEqual(before);
        }
      }
      expect(final.audit.map((a) => a.action)).toEqual([action]);
    } finally {
      planning.release?.();
      planning.passes = Infinity;
      await proxyRules('shenzhen', [], opts).catch(() => undefined);
      if (moment === 'waiting' || moment === 'paused') await cordon(shenzhen, false);
    }
  });
});
