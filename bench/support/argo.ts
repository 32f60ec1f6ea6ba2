/**
 * Argo Rollouts' side of the canary benchmarks: its controller (stack/argo.ts, built on
 * first use) against one cluster of a bench stack, a Rollout applied by server-side apply,
 * and watches (straight to the API server, in this process) that note when the Rollout and
 * its ReplicaSets changed. `promote` does what `kubectl argo rollouts promote` does for a
 * canary paused at a `pause: {}` step (pkg/kubectl-argo-rollouts/cmd/promote of v1.10.1):
 * a merge patch `{"status":{"pauseConditions":null}}` on the status subresource, and
 * `{"spec":{"paused":false}}` when spec.paused is set. The plugin itself is not built.
 */
import * as k8s from '@kubernetes/client-node';
import { argoUp, type ArgoInfo } from '../../stack/argo.ts';
import type { StackInfo } from '../../stack/types.ts';

export interface RolloutView {
  metadata?: { generation?: number };
  spec?: { paused?: boolean };
  status?: {
    phase?: string;
    observedGeneration?: string;
    readyReplicas?: number;
    currentStepIndex?: number;
    currentPodHash?: string;
    stableRS?: string;
    pauseConditions?: { reason: string; startTime: string }[] | null;
  };
}

export interface ReplicaSetEvent {
  at: number;
  hash: string;
  replicas: number;
  ready: number;
}

export interface ArgoSide {
  argo: ArgoInfo;
  ns: string;
  /** Every change of the Rollout seen by the watch, with this process's clock (performance.now()). */
  rollouts: { at: number; r: RolloutView }[];
  /** Every change of a ReplicaSet of the namespace (pod-template-hash, spec and ready replicas). */
  replicaSets: ReplicaSetEvent[];
  apply(o: object): Promise<RolloutView>;
  rollout(tag: string, replicas: number, steps: object[]): object;
  /** Resolves with the first time (performance.now()) `ok` holds for a Rollout change at or after `since`. */
  until(ok: (r: RolloutView) => boolean, since: number, what: string, timeoutMs?: number): Promise<number>;
  promote(): Promise<void>;
  stop(): Promise<void>;
}

export async function startArgoSide(stack: StackInfo, cluster: string, ns: string): Promise<ArgoSide> {
  const c = stack.clusters.find((x) => x.name === cluster)!;
  const opts = { dataDir: stack.dataDir, ...(stack.portBase ? { portBase: stack.portBase } : {}) };
  const argo = await argoUp(cluster, { ...opts, log: (l) => process.stderr.write(`${l}\n`) });
  const central = stack.registries.find((r) => r.name === 'central')!.host;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(c.directKubeconfig ?? c.kubeconfig);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const watch = new k8s.Watch(kc);
  const apply = async (o: object) =>
    (await objects.patch(o as k8s.KubernetesObject, undefined, undefined, 'bench', true, k8s.PatchStrategy.ServerSideApply)) as RolloutView;
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  const rollouts: { at: number; r: RolloutView }[] = [];
  const replicaSets: ReplicaSetEvent[] = [];
  // Watches that start again when the API server ends them (it does, and under load sooner):
  // each restart lists the objects first, so no change is missed, only seen late (said on stderr).
  const keepWatching = async <T>(path: string, list: () => Promise<T[]>, on: (o: T) => void): Promise<{ abort: () => void }> => {
    let stopped = false;
    let ctl: { abort: () => void } | undefined;
    const start = async (restart: boolean): Promise<void> => {
      if (stopped) return;
      if (restart) {
        process.stderr.write(`argo side: the watch of ${path} ended; listing and watching again\n`);
        for (const o of await list().catch(() => [])) on(o);
      }
      ctl = await watch.watch(path, {}, (_t: string, o: T) => on(o), () => {
        void start(true).catch(() => setTimeout(() => void start(true).catch(() => undefined), 1000));
      });
    };
    await start(false);
    return {
      abort: () => {
        stopped = true;
        ctl?.abort();
      },
    };
  };
  const ro = await keepWatching<RolloutView>(
    `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts`,
    async () => (await objects.list('argoproj.io/v1alpha1', 'Rollout', ns)).items as RolloutView[],
    (r) => rollouts.push({ at: performance.now(), r }),
  );
  const rs = await keepWatching<k8s.V1ReplicaSet>(
    `/apis/apps/v1/namespaces/${ns}/replicasets`,
    async () => (await objects.list('apps/v1', 'ReplicaSet', ns)).items as k8s.V1ReplicaSet[],
    (x) => replicaSets.push({ at: performance.now(), hash: x.metadata?.labels?.['rollouts-pod-template-hash'] ?? '', replicas: x.spec?.replicas ?? 0, ready: x.status?.readyReplicas ?? 0 }),
  );
  const latest = () => rollouts.at(-1)?.r;
  return {
    argo,
    ns,
    rollouts,
    replicaSets,
    apply,
    rollout: (tag, replicas, steps) => ({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Rollout',
      metadata: { name: 'web', namespace: ns },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: `${central}/demo/web:${tag}` }] } },
        strategy: { canary: { steps } },
      },
    }),
    async until(ok, since, what, timeoutMs = 300_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const hit = rollouts.find((e) => e.at >= since && ok(e.r));
        if (hit) return hit.at;
        if (performance.now() > deadline) throw new Error(`Argo Rollout: ${what}: not within ${timeoutMs / 1000} s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async promote() {
      const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
      const base = { group: 'argoproj.io', version: 'v1alpha1', namespace: ns, plural: 'rollouts', name: 'web' };
      await custom.patchNamespacedCustomObjectStatus({ ...base, body: { status: { pauseConditions: null } } }, mergePatch);
      if (latest()?.spec?.paused) await custom.patchNamespacedCustomObject({ ...base, body: { spec: { paused: false } } }, mergePatch);
    },
    async stop() {
      ro.abort();
      rs.abort();
      await objects.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }).catch(() => undefined);
    },
  };
}

/**
 * A Rollout done with the update that answered `generation`: its controller observed that
 * generation or a later one (it may bump it once by itself, e.g. on the first reconcile),
 * the new pod hash is the stable one, Healthy with every replica ready.
 */
export const healthyAt = (generation: number, replicas: number) => (r: RolloutView) =>
  Number(r.status?.observedGeneration ?? 0) >= generation &&
  r.status?.phase === 'Healthy' &&
  r.status.currentPodHash !== undefined &&
  r.status.currentPodHash === r.status.stableRS &&
  r.status.readyReplicas === replicas;
