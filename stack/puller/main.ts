/**
 * The image puller, one process of the local stack for every cluster: it plays
 * the part of the kubelet's image pulls, which kwok does not have.
 *
 *   node stack/puller/main.ts --config <data>/puller/config.json
 *
 * It watches the scheduled pods of each cluster (straight to the apiserver, as
 * a cluster component) and checks every image of a new pod (init, sidecar and
 * app containers) against the registry it names (stack/puller/registry.ts).
 *
 *  - All present: it annotates the pod `stack.flotilla.dev/pulled` and, per
 *    container, `imageid.stack.flotilla.dev/<container>: <repo>@sha256:...`.
 *    kwok's pod stages (stack/kwok/stages.yaml) select only pulled pods, and
 *    report those digests as containerStatuses[].imageID. In the same patch it writes
 *    the pod's behaviour (`stack.flotilla.dev/behaviour`: ready, unready, crashloop,
 *    unready-after) from the stack's behaviour table (stack/puller/behaviours.ts; by
 *    image digest or label), else from the pod's own `flotilla.dev/simulate`.
 *  - One missing, its registry down or not part of the stack: the pod stays
 *    Pending; the container waits in ErrImagePull, then ImagePullBackOff, with
 *    the registry's error in the message and kubelet-like events (Failed,
 *    BackOff). It tries again after 5 s, doubling to 30 s at most, and goes
 *    on as above once the image is there.
 *
 * A pod already started by kwok (it has a pod IP: it predates the puller) is
 * left alone. Idle, the process only holds one watch per cluster. GET
 * /healthz and /v1/state on its loopback port tell how it is doing.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import type { BehaviourRule } from './behaviours.ts';
import {
  BEHAVIOUR_ANNOTATION,
  BehaviourTableSchema,
  decide,
  RULE_ANNOTATION,
  UNREADY_AFTER_ANNOTATION,
} from './behaviours.ts';
import type { ImageRef, PullResult } from './registry.ts';
import { invalidImage, parseImage, resolveImage } from './registry.ts';

export const PULLED = 'stack.flotilla.dev/pulled';
export const IMAGE_ID_PREFIX = 'imageid.stack.flotilla.dev/';

const ConfigSchema = z.object({
  port: z.number().int().min(1).max(65535),
  clusters: z.array(z.object({ name: z.string().min(1), kubeconfig: z.string().min(1) })).min(1),
  /** host:port of every registry of the stack: the only ones a pull can reach. */
  registries: z.array(z.string().min(1)),
  backoff: z
    .object({ initialMs: z.number().int().positive(), maxMs: z.number().int().positive() })
    .default({ initialMs: 5_000, maxMs: 30_000 }),
  /** The behaviour table (stack/puller/behaviours.ts), read at start and on POST /v1/behaviours/reload. */
  behavioursFile: z.string().min(1).optional(),
});
type Config = z.infer<typeof ConfigSchema>;

/** The behaviour table as last read; a pod's behaviour is decided once, when it is marked pulled. */
class Behaviours {
  table: BehaviourRule[] = [];
  private readonly file: string | undefined;
  constructor(file: string | undefined) {
    this.file = file;
    try {
      this.reload();
    } catch (err) {
      log(`behaviours: ${(err as Error).message}; starting with none`);
    }
  }
  /** Re-reads the file; a bad one keeps the table as it was and says why. */
  reload(): void {
    if (!this.file) return;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      this.table = []; // no file: no rules
      return;
    }
    const parsed = BehaviourTableSchema.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new Error(`${this.file}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    this.table = parsed.data;
    log(`behaviours: ${this.table.length} rule(s)`);
  }
}

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** metav1.Time: RFC 3339, seconds. */
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const SCHEDULED = 'spec.nodeName!=';

/** One registry answer per image for a second: a Deployment's replicas share their checks. */
class PullCache {
  private readonly entries = new Map<string, { at: number; result: Promise<PullResult> }>();
  readonly known: ReadonlySet<string>;
  counts = { checks: 0, cached: 0 };
  constructor(registries: string[]) {
    this.known = new Set(registries);
  }
  pull(raw: string): Promise<PullResult> {
    const ref: ImageRef | undefined = parseImage(raw);
    if (!ref) return Promise.resolve(invalidImage(raw));
    const hit = this.entries.get(ref.full);
    if (hit && performance.now() - hit.at < 1_000) {
      this.counts.cached++;
      return hit.result;
    }
    this.counts.checks++;
    const result = resolveImage(ref, this.known);
    this.entries.set(ref.full, { at: performance.now(), result });
    if (this.entries.size > 1000) this.entries.delete(this.entries.keys().next().value!);
    return result;
  }
}

interface Item {
  container: k8s.V1Container;
  init: boolean;
  result: PullResult;
}

interface Tracked {
  pod: k8s.V1Pod;
  attempt: number;
  state: 'checking' | 'failed' | 'backoff';
  timer?: NodeJS.Timeout;
  nextRetryAt?: string;
  message?: string;
}

/** Creates the API client: every request bounded, one kept-alive connection pool (client-node makes one per request). */
function coreApi(kc: k8s.KubeConfig): k8s.CoreV1Api {
  let dispatcher: ReturnType<k8s.RequestContext['getDispatcher']>;
  const config = k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(kc.getCurrentCluster()!.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx: k8s.RequestContext) => {
          ctx.setSignal(AbortSignal.timeout(10_000));
          const fresh = ctx.getDispatcher();
          if (fresh) {
            if (!dispatcher) dispatcher = fresh;
            else if (fresh !== dispatcher) {
              ctx.setDispatcher(dispatcher);
              void fresh.close();
            }
          }
          return ctx;
        },
        post: async (res: k8s.ResponseContext) => res,
      },
    ],
  });
  return new k8s.CoreV1Api(config);
}

const code = (err: unknown) =>
  (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const strategic = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);

class ClusterPuller {
  readonly name: string;
  private readonly kubeconfig: string;
  private kubeconfigText = '';
  private kc = new k8s.KubeConfig();
  private core!: k8s.CoreV1Api;
  private readonly cache: PullCache;
  private readonly behaviours: Behaviours;
  private readonly backoff: Config['backoff'];
  private readonly tracked = new Map<string, Tracked>();
  /** Events already written: key -> name and count, so a repeat bumps the count as the kubelet does. */
  private readonly events = new Map<string, { name: string; count: number }>();
  private rv = '';
  private watch: AbortController | undefined;
  private stopped = false;
  connected = false;
  lastError: string | undefined;
  counts = { pulled: 0, failed: 0 };

  constructor(
    name: string,
    kubeconfig: string,
    cache: PullCache,
    behaviours: Behaviours,
    backoff: Config['backoff'],
  ) {
    this.name = name;
    this.kubeconfig = kubeconfig;
    this.cache = cache;
    this.behaviours = behaviours;
    this.backoff = backoff;
  }

  view() {
    return {
      name: this.name,
      connected: this.connected,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      counts: { ...this.counts },
      waiting: [...this.tracked.values()].map((t) => ({
        namespace: t.pod.metadata?.namespace,
        name: t.pod.metadata?.name,
        state: t.state,
        attempt: t.attempt,
        ...(t.nextRetryAt ? { nextRetryAt: t.nextRetryAt } : {}),
        ...(t.message ? { message: t.message } : {}),
      })),
    };
  }

  /**
   * List, then watch from there; again after every end. Errors (no kubeconfig yet, the
   * apiserver down) back off 0.25 s doubling to 2 s: a cluster that comes back is watched
   * again within 2 s (connection refused on loopback costs next to nothing).
   */
  async run(): Promise<void> {
    let delay = 0;
    while (!this.stopped) {
      try {
        this.load();
        if (!this.rv) await this.relist();
        await this.watchOnce();
        delay = 0;
      } catch (err) {
        this.connected = false;
        const message = (err as Error).message ?? String(err);
        if (message !== this.lastError) log(`${this.name}: watch: ${message}`);
        this.lastError = message;
        if (code(err) === 410) this.rv = '';
        delay = Math.min(Math.max(250, delay * 2), 2_000);
        await sleep(delay);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.watch?.abort();
    for (const t of this.tracked.values()) clearTimeout(t.timer);
  }

  /** (Re)loads the kubeconfig: the cluster writes it once its apiserver is up, maybe after this process started. */
  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.kubeconfig, 'utf8');
    } catch (err) {
      throw new Error(
        `no kubeconfig yet (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        { cause: err },
      );
    }
    if (text === this.kubeconfigText) return;
    const kc = new k8s.KubeConfig();
    kc.loadFromString(text);
    this.kc = kc;
    this.core = coreApi(kc);
    this.kubeconfigText = text;
  }

  private async relist(): Promise<void> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: SCHEDULED });
    const seen = new Set<string>();
    for (const pod of list.items) {
      seen.add(pod.metadata!.uid!);
      this.consider(pod);
    }
    for (const uid of this.tracked.keys()) if (!seen.has(uid)) this.forget(uid);
    this.rv = list.metadata?.resourceVersion ?? '';
    this.connected = true;
    this.lastError = undefined;
  }

  private watchOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const w = new k8s.Watch(this.kc);
      w.watch(
        '/api/v1/pods',
        { fieldSelector: SCHEDULED, resourceVersion: this.rv, allowWatchBookmarks: true },
        (type: string, obj: k8s.V1Pod & { code?: number }) => {
          if (type === 'ERROR') {
            if (obj.code === 410) this.rv = ''; // too old: list again
            return;
          }
          this.rv = obj.metadata?.resourceVersion ?? this.rv;
          if (type === 'BOOKMARK') return;
          if (type === 'DELETED') this.forget(obj.metadata!.uid!);
          else this.consider(obj);
        },
        (err: unknown) => {
          this.watch = undefined;
          // The client's inactivity timeout ends a quiet watch: pick up where it was.
          if (!err || (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError')
            resolve();
          else reject(err as Error);
        },
      ).then((ctrl) => {
        this.watch = ctrl;
        this.connected = true;
        this.lastError = undefined;
        if (this.stopped) ctrl.abort();
      }, reject);
    });
  }

  private forget(uid: string): void {
    const t = this.tracked.get(uid);
    if (!t) return;
    clearTimeout(t.timer);
    this.tracked.delete(uid);
    for (const key of this.events.keys()) if (key.startsWith(`${uid}|`)) this.events.delete(key);
  }

  private consider(pod: k8s.V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const done =
      pod.metadata?.deletionTimestamp ||
      pod.metadata?.annotations?.[PULLED] ||
      pod.status?.podIP || // started before the puller ran: kwok has it
      pod.status?.phase === 'Succeeded' ||
      pod.status?.phase === 'Failed';
    if (done) return this.forget(uid);
    if (!pod.spec?.nodeName) return;
    const t = this.tracked.get(uid);
    if (t) {
      t.pod = pod; // its own timer decides when to look again
      return;
    }
    this.tracked.set(uid, { pod, attempt: 0, state: 'checking' });
    void this.attempt(uid);
  }

  private async attempt(uid: string): Promise<void> {
    const t = this.tracked.get(uid);
    if (!t) return;
    t.state = 'checking';
    t.nextRetryAt = undefined;
    const spec = t.pod.spec!;
    const containers = [
      ...(spec.initContainers ?? []).map((c) => ({ container: c, init: true })),
      ...spec.containers.map((c) => ({ container: c, init: false })),
    ];
    const items: Item[] = await Promise.all(
      containers.map(async (x) => ({ ...x, result: await this.cache.pull(x.container.image ?? '') })),
    );
    if (this.tracked.get(uid) !== t) return; // deleted meanwhile
    try {
      if (items.every((i) => i.result.ok)) {
        await this.markPulled(t.pod, items);
        this.counts.pulled++;
        this.forget(uid);
        return;
      }
      this.counts.failed++;
      t.attempt++;
      const failing = items.filter((i) => !i.result.ok);
      const message = failing.map((i) => (i.result as { message: string }).message).join('; ');
      if (message !== t.message)
        log(`${this.name}: ${t.pod.metadata?.namespace}/${t.pod.metadata?.name}: ${message}`);
      t.message = message;
      await this.showFailure(t.pod, items, 'ErrImagePull');
      t.state = 'failed';
      const delay = Math.min(this.backoff.initialMs * 2 ** (t.attempt - 1), this.backoff.maxMs);
      t.nextRetryAt = new Date(Date.now() + delay).toISOString();
      // The kubelet's next sync shows the back-off; the retry comes when it is over.
      const show = Math.min(1_000, delay / 2);
      t.timer = setTimeout(() => {
        t.timer = setTimeout(() => void this.attempt(uid), delay - show);
        t.state = 'backoff';
        void this.showFailure(t.pod, items, 'ImagePullBackOff').catch((err) => this.writeFailed(uid, err));
      }, show);
    } catch (err) {
      this.writeFailed(uid, err);
    }
  }

  /** A write failed: a pod gone or replaced is forgotten; anything else (apiserver away) is tried again. */
  private writeFailed(uid: string, err: unknown): void {
    const t = this.tracked.get(uid);
    if (!t) return;
    const status = code(err);
    if (status === 404 || status === 409 || status === 422) {
      this.forget(uid);
      return;
    }
    log(
      `${this.name}: ${t.pod.metadata?.namespace}/${t.pod.metadata?.name}: write failed (${(err as Error).message}); trying again`,
    );
    clearTimeout(t.timer);
    t.timer = setTimeout(() => void this.attempt(uid), 1_000);
  }

  private async markPulled(pod: k8s.V1Pod, items: Item[]): Promise<void> {
    const annotations: Record<string, string | null> = { [PULLED]: new Date().toISOString() };
    for (const i of items)
      if (i.result.ok) annotations[`${IMAGE_ID_PREFIX}${i.container.name}`] = i.result.imageID;
    // What the pod does from here (kwok's stages select on it), decided once, now.
    const d = decide(this.behaviours.table, {
      labels: pod.metadata?.labels ?? {},
      annotations: pod.metadata?.annotations ?? {},
      images: items.flatMap((i) =>
        i.result.ok
          ? [{ repository: parseImage(i.container.image ?? '')!.repository, digest: i.result.digest }]
          : [],
      ),
    });
    annotations[BEHAVIOUR_ANNOTATION] = d.behaviour;
    annotations[UNREADY_AFTER_ANNOTATION] = d.afterSeconds !== undefined ? `${d.afterSeconds}s` : null;
    annotations[RULE_ANNOTATION] = d.rule ?? null;
    if (d.behaviour !== 'ready')
      log(
        `${this.name}: ${pod.metadata?.namespace}/${pod.metadata?.name}: ${d.behaviour}${d.rule ? ` (${d.rule})` : ''}`,
      );
    await this.core.patchNamespacedPod(
      {
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        // The uid makes it a precondition: a pod re-created under the same name is not ours to mark.
        body: { metadata: { uid: pod.metadata!.uid, annotations } },
      },
      merge,
    );
  }

  /** The status and events a kubelet shows for a pod whose images it cannot pull. */
  private async showFailure(
    pod: k8s.V1Pod,
    items: Item[],
    phase: 'ErrImagePull' | 'ImagePullBackOff',
  ): Promise<void> {
    const ts = now();
    const firstFailingInit = items.findIndex((i) => i.init && !i.result.ok);
    const initBlocked = firstFailingInit >= 0;
    const waiting = (i: Item): k8s.V1ContainerStateWaiting => {
      if (i.result.ok)
        return { reason: i.init ? 'PodInitializing' : initBlocked ? 'PodInitializing' : 'ContainerCreating' };
      if (i.result.reason === 'InvalidImageName')
        return { reason: 'InvalidImageName', message: i.result.message };
      return phase === 'ErrImagePull'
        ? { reason: 'ErrImagePull', message: i.result.message }
        : {
            reason: 'ImagePullBackOff',
            message: `Back-off pulling image "${i.container.image}": ErrImagePull: ${i.result.message}`,
          };
    };
    const status = (i: Item, index: number): object => {
      const base = {
        name: i.container.name,
        image: i.container.image ?? '',
        imageID: '',
        ready: false,
        restartCount: 0,
        started: false,
      };
      if (i.init && (!initBlocked || index < firstFailingInit)) {
        // Ran before the failing one (or all init images are there): done, or running for a sidecar.
        return i.container.restartPolicy === 'Always'
          ? { ...base, started: true, state: { running: { startedAt: ts } } }
          : {
              ...base,
              state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: ts, finishedAt: ts } },
            };
      }
      if (i.init && index > firstFailingInit)
        return { ...base, state: { waiting: { reason: 'PodInitializing' } } };
      return { ...base, state: { waiting: waiting(i) } };
    };
    const inits = items.filter((i) => i.init);
    const apps = items.filter((i) => !i.init);
    const names = (xs: Item[]) => `[${xs.map((i) => i.container.name).join(' ')}]`;
    const body = {
      status: {
        phase: 'Pending',
        conditions: [
          initBlocked
            ? {
                type: 'Initialized',
                status: 'False',
                reason: 'ContainersNotInitialized',
                message: `containers with incomplete status: ${names(inits.slice(firstFailingInit))}`,
                lastTransitionTime: ts,
              }
            : { type: 'Initialized', status: 'True', lastTransitionTime: ts },
          {
            type: 'Ready',
            status: 'False',
            reason: 'ContainersNotReady',
            message: `containers with unready status: ${names(apps)}`,
            lastTransitionTime: ts,
          },
          {
            type: 'ContainersReady',
            status: 'False',
            reason: 'ContainersNotReady',
            message: `containers with unready status: ${names(apps)}`,
            lastTransitionTime: ts,
          },
        ],
        ...(inits.length ? { initContainerStatuses: inits.map((i) => status(i, items.indexOf(i))) } : {}),
        containerStatuses: apps.map((i) => status(i, items.indexOf(i))),
        startTime: pod.status?.startTime ?? ts,
      },
    };
    await this.core.patchNamespacedPodStatus(
      {
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        body: { metadata: { uid: pod.metadata!.uid }, ...body },
      },
      strategic,
    );
    for (const i of items) {
      if (i.result.ok) continue;
      if (initBlocked && i.init && items.indexOf(i) > firstFailingInit) continue; // not tried yet
      if (initBlocked && !i.init) continue;
      const where = `spec.${i.init ? 'initContainers' : 'containers'}{${i.container.name}}`;
      if (i.result.reason === 'InvalidImageName') {
        await this.event(pod, where, 'Warning', 'InspectFailed', i.result.message);
        await this.event(pod, where, 'Warning', 'Failed', 'Error: InvalidImageName');
      } else if (phase === 'ErrImagePull') {
        await this.event(
          pod,
          where,
          'Warning',
          'Failed',
          `Failed to pull image "${i.container.image}": ${i.result.message}`,
        );
        await this.event(pod, where, 'Warning', 'Failed', 'Error: ErrImagePull');
      } else {
        await this.event(pod, where, 'Normal', 'BackOff', `Back-off pulling image "${i.container.image}"`);
        await this.event(pod, where, 'Warning', 'Failed', 'Error: ImagePullBackOff');
      }
    }
  }

  /** Writes an Event on the pod as the kubelet of its node; a repeat bumps count and lastTimestamp. */
  private async event(
    pod: k8s.V1Pod,
    fieldPath: string,
    type: string,
    reason: string,
    message: string,
  ): Promise<void> {
    const meta = pod.metadata!;
    const key = `${meta.uid}|${fieldPath}|${reason}|${message}`;
    const ts = now();
    const seen = this.events.get(key);
    if (seen) {
      seen.count++;
      await this.core
        .patchNamespacedEvent(
          { name: seen.name, namespace: meta.namespace!, body: { count: seen.count, lastTimestamp: ts } },
          merge,
        )
        .catch(() => undefined); // an event is best effort, as the kubelet's are
      return;
    }
    const name = `${meta.name}.${randomBytes(8).toString('hex')}`;
    this.events.set(key, { name, count: 1 });
    const node = pod.spec?.nodeName ?? '';
    await this.core
      .createNamespacedEvent({
        namespace: meta.namespace!,
        body: {
          metadata: { name, namespace: meta.namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            fieldPath,
          },
          reason,
          message,
          type,
          source: { component: 'kubelet', host: node },
          reportingComponent: 'kubelet',
          reportingInstance: node,
          firstTimestamp: new Date(),
          lastTimestamp: new Date(),
          count: 1,
        },
      })
      .catch(() => undefined);
  }
}

function main(): void {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (!values.config) {
    console.error('usage: node stack/puller/main.ts --config <file>');
    process.exit(2);
  }
  const cfg = ConfigSchema.parse(JSON.parse(readFileSync(values.config, 'utf8')));
  const cache = new PullCache(cfg.registries);
  const behaviours = new Behaviours(cfg.behavioursFile);
  const pullers = cfg.clusters.map(
    (c) => new ClusterPuller(c.name, c.kubeconfig, cache, behaviours, cfg.backoff),
  );
  for (const p of pullers) void p.run();

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/healthz') return send(200, { ok: true });
    if (req.url === '/v1/state')
      return send(200, { clusters: pullers.map((p) => p.view()), registry: cache.counts });
    if (req.url === '/v1/behaviours' && req.method === 'GET') return send(200, { rules: behaviours.table });
    if (req.url === '/v1/behaviours/reload' && req.method === 'POST') {
      try {
        behaviours.reload();
        return send(200, { rules: behaviours.table });
      } catch (err) {
        return send(400, { error: 'BadTable', message: (err as Error).message });
      }
    }
    send(404, { error: 'NotFound' });
  });
  server.listen(cfg.port, '127.0.0.1', () =>
    log(
      `puller: ${pullers.length} clusters, registries ${cfg.registries.join(', ')}; state on http://127.0.0.1:${cfg.port}/v1/state`,
    ),
  );
  server.on('error', (err) => {
    console.error(`port ${cfg.port}: ${err.message}`);
    process.exit(1);
  });
  const stop = (signal: string) => {
    log(`${signal}: stopping`);
    for (const p of pullers) p.stop();
    server.close();
    server.closeAllConnections();
    setImmediate(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) main();
