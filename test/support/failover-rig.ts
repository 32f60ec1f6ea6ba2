/**
 * A fleet with failover enabled on a real stack (the failover integration test and bench/recovery.ts):
 * the four-cluster fleet (stack/fleet-4.yaml) as a stack of its own, the real worker in process (hub
 * and one queue per cluster, the fleet monitor started by it) with failover settings, the HTTP API,
 * and a webhook receiver that checks each traffic-steering call's signature. What the helpers read is
 * read back from each cluster's API server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Express } from 'express';
import request from 'supertest';
import { createClusterClients, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { verifySignature } from '../../activities/notify/index.ts';
import { webhookSteering } from '../../activities/steering.ts';
import { createApp } from '../../api/app.ts';
import { createLogger } from '../../api/logger.ts';
import { FailoverSettingsSchema, type FailoverSettings, type Inventory } from '../../model/index.ts';
import { down, isAlive, recordedProcesses, up, type StackOptions } from '../../stack/index.ts';
import { repoRoot } from '../../stack/config.ts';
import type { StackInfo } from '../../stack/types.ts';
import { parseConfig } from '../../worker/config.ts';
import { inventoryFromStack } from '../../worker/inventory-from-stack.ts';
import { startWorkers, type WorkersHandle } from '../../worker/main.ts';
import type { FleetView } from '../../workflows/fleetMessages.ts';
import { CI, SRE, tokens, VIEWER } from './tokens.ts';

export const FLEET4 = path.join(repoRoot, 'stack', 'fleet-4.yaml');
const SECRET = 'steering-secret-for-tests';

export interface Steered {
  type: string;
  cluster: string;
  to?: string[];
  from?: string[];
  apps: string[];
  signature: 'ok' | string;
}

export class FailoverRig {
  info!: StackInfo;
  inventory!: Inventory;
  workers: WorkersHandle | undefined;
  connection!: Connection;
  temporal!: Client;
  api!: Express;
  readonly clients = new Map<string, ClusterClients>();
  readonly steered: Steered[] = [];
  #receiver!: Server;
  #steeringUrl = '';
  readonly opts: StackOptions;
  settings: FailoverSettings;
  readonly namespaces = new Set<string>();

  constructor(opts: StackOptions, settings: Partial<FailoverSettings> = {}) {
    this.opts = { fleetFile: FLEET4, ...opts };
    this.settings = FailoverSettingsSchema.parse({ enabled: true, ...settings });
  }

  /** Brings the stack up (purged first), then the receiver, the worker and the API. */
  async start(): Promise<void> {
    // Nothing here routes traffic: the routers' resource definitions are spared (~15 s per up).
    process.env.FLOTILLA_STACK_CRDS = 'none';
    await down({ ...this.opts, purge: true });
    this.info = await up(this.opts);
    this.#receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const v = verifySignature({ body, header: req.headers['flotilla-signature'], secret: SECRET });
        const e = JSON.parse(body.toString('utf8')) as Steered;
        this.steered.push({ type: e.type, cluster: e.cluster, ...(e.to ? { to: e.to } : {}), ...(e.from ? { from: e.from } : {}), apps: e.apps, signature: v.ok ? 'ok' : v.reason });
        res.writeHead(v.ok ? 200 : 401).end();
      });
    });
    await new Promise<void>((r) => this.#receiver.listen(0, '127.0.0.1', r));
    this.#steeringUrl = `http://127.0.0.1:${(this.#receiver.address() as AddressInfo).port}/gslb`;
    this.inventory = { ...inventoryFromStack(this.info), failover: this.settings };
    for (const c of this.inventory.clusters) this.clients.set(c.name, createClusterClients(c, { requestTimeoutMs: 2_000 }));
    this.connection = await Connection.connect({ address: this.info.temporal.address });
    this.temporal = new Client({ connection: this.connection, namespace: this.info.temporal.namespace });
    await this.startWorkers();
    this.api = createApp({ temporal: this.temporal, inventory: this.inventory, tokens, logger: createLogger('silent') });
  }

  /** The worker (again), with the rig's settings (change `settings` first to restart with others). */
  async startWorkers(): Promise<void> {
    this.inventory = { ...this.inventory, failover: this.settings };
    const config = parseConfig({ temporal: { address: this.info.temporal.address, namespace: this.info.temporal.namespace }, inventoryPath: '(given)', logLevel: 'warn' });
    const logger = createLogger('silent');
    const steering = webhookSteering({ sinks: [{ name: 'gslb', url: this.#steeringUrl, secret: { env: 'FLOTILLA_TEST_STEERING_SECRET' }, events: ['cluster.failedOver', 'cluster.failedBack'], format: 'flotilla', timeout: 5_000 }] }, logger);
    process.env.FLOTILLA_TEST_STEERING_SECRET = SECRET;
    this.workers = await startWorkers(config, { inventory: this.inventory, logger, fleetMonitor: true, steering });
  }

  async stopWorkers(): Promise<void> {
    await this.workers?.shutdown();
    this.workers = undefined;
  }

  async stop(): Promise<void> {
    // Bounded: the stack goes down even if a worker does not stop (its activities are cancelled after the grace time).
    await Promise.race([this.stopWorkers().catch(() => undefined), new Promise((r) => setTimeout(r, 60_000))]);
    await this.connection?.close().catch(() => undefined);
    await new Promise((r) => (this.#receiver ? this.#receiver.close(r) : r(undefined)));
    const procs = Object.values(recordedProcesses(this.opts));
    await down({ ...this.opts, purge: true });
    const alive = procs.filter((p) => isAlive(p));
    if (alive.length) throw new Error(`failover stack: processes survived down: ${alive.map((p) => p.pid).join(', ')}`);
  }

  /** Starts a delivery through the API (role ci) and waits until it is Healthy. */
  async deliver(ns: string, placement: Record<string, unknown>, replicas: number, tag = 'v1'): Promise<string> {
    this.namespaces.add(ns);
    const central = this.info.registries.find((r) => r.region === 'central')!.host;
    const res = await request(this.api)
      .post('/v1/deliveries')
      .set('Authorization', CI)
      .send({ type: 'deploy', app: { name: 'web', namespace: ns, image: `${central}/demo/web:${tag}`, replicas, placement }, rolloutTimeout: '2m' });
    if (res.status !== 202) throw new Error(`POST /v1/deliveries: ${res.status} ${JSON.stringify(res.body)}`);
    const id = (res.body as { id: string }).id;
    const end = Date.now() + 120_000;
    while (Date.now() < end) {
      const s = await request(this.api).get(`/v1/deliveries/${id}`).set('Authorization', VIEWER);
      if (s.body.phase === 'Healthy') return id;
      if (['Degraded', 'Aborted', 'RolledBack', 'NeedsAttention'].includes(s.body.phase as string)) throw new Error(`delivery ${id} ended ${s.body.phase}: ${s.body.message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`delivery ${id} not Healthy in 2 minutes`);
  }

  /** Each reachable cluster's Deployment web in `ns`: spec replicas and ready replicas (absent: none there; unreadable clusters left out). */
  async replicas(ns: string, skip: string[] = []): Promise<Record<string, { replicas: number; ready: number } | null>> {
    const out: Record<string, { replicas: number; ready: number } | null> = {};
    await Promise.all(
      [...this.clients].filter(([n]) => !skip.includes(n)).map(async ([n, c]) => {
        try {
          const d = await c.apps.readNamespacedDeployment({ name: 'web', namespace: ns });
          out[n] = { replicas: d.spec?.replicas ?? 0, ready: d.status?.readyReplicas ?? 0 };
        } catch (e) {
          if ((e as { code?: number }).code === 404) out[n] = null;
        }
      }),
    );
    return out;
  }

  /** True when the reachable clusters (all but `skip`) run exactly `want` replicas, all ready (0: no Deployment or 0 replicas). */
  async runs(ns: string, want: Record<string, number>, skip: string[] = []): Promise<boolean> {
    const got = await this.replicas(ns, skip);
    return Object.entries(want).every(([c, n]) => (n === 0 ? !got[c] || got[c]!.replicas === 0 : got[c]?.replicas === n && got[c]!.ready === n));
  }

  async view(): Promise<FleetView & { items: (FleetView['clusters'][string] & { name: string })[] }> {
    const res = await request(this.api).get('/v1/clusters').set('Authorization', VIEWER);
    if (res.status !== 200) throw new Error(`GET /v1/clusters: ${res.status} ${JSON.stringify(res.body)}`);
    const body = res.body as { items: (FleetView['clusters'][string] & { name: string })[]; settings: FleetView['settings']; events: FleetView['events'] };
    return { ...body, clusters: Object.fromEntries(body.items.map((i) => [i.name, i])), startedAt: '' };
  }

  action(cluster: string, action: string, auth = SRE) {
    return request(this.api).post(`/v1/clusters/${cluster}/actions`).set('Authorization', auth).send({ action });
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.namespaces].flatMap((name) => [...this.clients.values()].map((c) => c.core.deleteNamespace({ name }).catch(() => undefined))));
  }
}

/** Polls `check` every 250 ms until it returns a value (undefined or a throw: not yet): the integration tests' one helper. */
export { eventually as waitFor } from '../integration/support.ts';
