/**
 * Workflow tests run the real workflows on a real Temporal dev server with
 * in-memory stand-ins for the cluster activities: each FakeCluster keeps
 * Deployments, revisions and a fault switch, so a test can check where each
 * cluster ended up, in which order the steps ran, and what the SRE saw.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, DefaultLogger, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { quietRuntime } from '../support/temporal.ts';
import type {
  ApplyAppInput,
  ApplyAppResult,
  AppRef,
  ClusterActivities,
  HubActivities,
  RollbackInput,
  WaitForRolloutInput,
} from '../../activities/types.ts';
import type { ClusterInfo } from '../../model/index.ts';

export { quietRuntime };

export async function bundle(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: new URL('../../workflows/index.ts', import.meta.url).pathname,
    logger: new DefaultLogger('WARN'),
  });
}

interface FakeDeployment {
  image: string;
  replicas: number;
  revision: number;
  generation: number;
  /** revision -> image, as ReplicaSets remember them */
  history: Map<number, string>;
}

/** Opens the fault switch from a test: next calls throw what the cluster would. */
export type Fault = 'none' | 'unreachable';

export class FakeCluster {
  readonly name: string;
  readonly deployments = new Map<string, FakeDeployment>();
  fault: Fault = 'none';
  /** Images whose pods never become ready here. */
  readonly badImages = new Set<string>();
  readonly calls: { op: string; image?: string; at: number }[] = [];
  /** While set, waitForRollout reports `ready` replicas in a heartbeat and waits for `release`. */
  rolloutGate: { ready: number; release: Promise<void> } | undefined;
  /** While set, an apply changes the Deployment and then never answers (the answer is lost). */
  applyHangs = false;
  constructor(name: string) {
    this.name = name;
  }

  private check(op: string, image?: string): void {
    this.calls.push({ op, ...(image ? { image } : {}), at: Date.now() });
    if (this.fault === 'unreachable') {
      throw ApplicationFailure.create({ type: 'ClusterUnreachable', message: `connect ECONNREFUSED (cluster ${this.name})` });
    }
  }

  count(op: string): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  activities(): ClusterActivities {
    const key = (r: { namespace: string; name: string }) => `${r.namespace}/${r.name}`;
    return {
      applyApp: async (i: ApplyAppInput): Promise<ApplyAppResult> => {
        if (i.cluster !== this.name) throw ApplicationFailure.nonRetryable(`wrong cluster ${i.cluster} on ${this.name}`);
        this.check('apply', i.target.image);
        const d = this.deployments.get(key(i.app));
        if (!d) {
          this.deployments.set(key(i.app), { image: i.target.image, replicas: i.target.replicas, revision: 1, generation: 1, history: new Map([[1, i.target.image]]) });
          return { generation: 1, created: true };
        }
        const before = { previousRevision: d.revision, previousImage: d.image };
        if (d.image !== i.target.image) {
          d.revision = Math.max(...d.history.keys()) + 1;
          d.history.set(d.revision, i.target.image);
          d.generation += 1;
        } else if (d.replicas !== i.target.replicas) d.generation += 1;
        d.image = i.target.image;
        d.replicas = i.target.replicas;
        if (this.applyHangs) await new Promise(() => undefined);
        return { generation: d.generation, created: false, ...before };
      },
      waitForRollout: async (i: WaitForRolloutInput) => {
        const d = this.deployments.get(key(i));
        this.check('wait', d?.image);
        if (!d) throw ApplicationFailure.nonRetryable('no deployment', 'NotFound');
        if (this.rolloutGate) {
          const gate = this.rolloutGate;
          Context.current().heartbeat({ cluster: this.name, readyReplicas: gate.ready, message: `${gate.ready} of ${d.replicas} updated replicas available` });
          await gate.release;
        }
        if (this.badImages.has(d.image)) {
          throw ApplicationFailure.create({ type: 'RolloutFailed', nonRetryable: true, message: `pod ${i.name}-abc on ${this.name} Running but not Ready` });
        }
        return { revision: d.revision, image: d.image, replicas: d.replicas, updatedReplicas: d.replicas, readyReplicas: d.replicas, availableReplicas: d.replicas };
      },
      readAppState: async (i: AppRef) => {
        const d = this.deployments.get(key(i));
        return d ? { exists: true, revision: d.revision, image: d.image, replicas: d.replicas, readyReplicas: d.replicas } : { exists: false };
      },
      rollbackApp: async (i: RollbackInput) => {
        this.check('rollback');
        const d = this.deployments.get(key(i));
        if (i.toRevision === undefined) {
          this.deployments.delete(key(i));
          return { deleted: true };
        }
        if (!d) throw ApplicationFailure.nonRetryable('no deployment', 'NotFound');
        const image = d.history.get(i.toRevision);
        if (!image) throw ApplicationFailure.nonRetryable(`no revision ${i.toRevision}`, 'NoPreviousRevision');
        if (d.image !== image) {
          d.history.delete(i.toRevision);
          d.revision = Math.max(0, ...d.history.keys()) + 1;
          d.history.set(d.revision, image);
          d.image = image;
          d.generation += 1;
        }
        return { deleted: false, generation: d.generation, image };
      },
    };
  }
}

export interface Fleet {
  client: Client;
  /** While set, planning (the hub's fleet read) waits for it to resolve. */
  planGate: Promise<void> | undefined;
  taskQueue: string;
  clusters: Record<string, FakeCluster>;
  info: ClusterInfo[];
  /** Stops every worker of the fleet (or of one cluster) and waits for them. */
  stop(): Promise<void>;
  stopCluster(name: string): Promise<void>;
  startCluster(name: string): Promise<void>;
}

const defaultClusters: Omit<ClusterInfo, 'taskQueue'>[] = [
  { name: 'beijing', region: 'cn-north', provider: 'private', labels: { region: 'cn-north', provider: 'private' }, capacity: 2 },
  { name: 'shenzhen', region: 'cn-south', provider: 'private', labels: { region: 'cn-south', provider: 'private' }, capacity: 1 },
  { name: 'cloud-hk', region: 'ap-east', provider: 'public', labels: { region: 'ap-east', provider: 'public' }, capacity: 1 },
];

export async function startFleet(address: string, workflowBundle: WorkflowBundleWithSourceMap): Promise<Fleet> {
  quietRuntime();
  const run = randomUUID().slice(0, 8);
  const taskQueue = `hub-${run}`;
  const info: ClusterInfo[] = defaultClusters.map((c) => ({ ...c, taskQueue: `cluster-${run}-${c.name}` }));
  const clusters = Object.fromEntries(info.map((c) => [c.name, new FakeCluster(c.name)]));
  const connection = await NativeConnection.connect({ address });
  const fleetRef: { planGate: Promise<void> | undefined } = { planGate: undefined };
  const hub: HubActivities = {
    describeFleet: async () => {
      if (fleetRef.planGate) await fleetRef.planGate;
      return info;
    },
  };
  const workers = new Map<string, { worker: Worker; done: Promise<void> }>();
  const launch = async (key: string, worker: Worker) => {
    workers.set(key, { worker, done: worker.run() });
  };
  await launch('hub', await Worker.create({ connection, taskQueue, workflowBundle, activities: hub }));
  const startCluster = async (name: string) => {
    const c = info.find((x) => x.name === name)!;
    await launch(name, await Worker.create({ connection, taskQueue: c.taskQueue, activities: clusters[name]!.activities() }));
  };
  for (const c of info) await startCluster(c.name);
  const stopCluster = async (name: string) => {
    const w = workers.get(name);
    if (!w) return;
    workers.delete(name);
    w.worker.shutdown();
    await w.done;
  };
  const client = new Client({ connection: await Connection.connect({ address }) });
  return Object.assign(fleetRef, {
    client,
    taskQueue,
    clusters,
    info,
    stopCluster,
    startCluster,
    async stop() {
      for (const key of [...workers.keys()]) await stopCluster(key);
      await client.connection.close();
      await connection.close();
    },
  });
}

/** Polls a query until `pred` holds, or fails with the last value seen. */
export async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < end) {
    last = await read();
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`condition not met in ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
}
