/**
 * One Kubernetes cluster of the fleet: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler (all from the one `flotilla-kube`
 * binary) and kwok for the fake nodes and pod lifecycles. Each is a supervised
 * process named `cluster/<name>/<component>`.
 *
 * Clients (stack.json's kubeconfig) reach the cluster through the API-server
 * proxy (stack/proxy.ts), whose fault rules make it hang, fail or lose answers;
 * the cluster's own components use a kubeconfig straight to the apiserver, so a
 * proxy fault never stops the cluster itself.
 *
 * Fault `cluster-down` closes the proxy's listener (the API refuses connections),
 * stops the apiserver and the components that talk only to it; etcd keeps
 * running with the data. `cluster-up` starts them again. Left running, the controller-manager's informers came back
 * from a 90 s outage only ~45 s after the apiserver did (reflector backoff): new
 * Deployments sat without ReplicaSets, which a test would read as Flotilla's bug.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FleetCluster, StackConfig } from './config.ts';
import { ports } from './config.ts';
import type { ClusterFiles } from './kube.ts';
import {
  apiserverReady,
  clusterFiles,
  ensureCredentials,
  ensureNodes,
  kubeTarget,
  readyNodes,
  reReadyPods,
  setHeartbeats,
  writeKubeconfig,
} from './kube.ts';
import { ensureDefinitions, upBundles } from './crds.ts';
import { assertPortFree, httpRequest, portOpen } from './net.ts';
import type { ProcRecord, StartSpec } from './process.ts';
import { isAlive, memoryOf, readState, startProcess, stopProcess, updateState, waitFor } from './process.ts';
import type { ProxyClusterView } from './proxy.ts';
import { proxyClose, proxyOpen } from './proxy.ts';

export const COMPONENTS = ['etcd', 'apiserver', 'controller-manager', 'scheduler', 'kwok'] as const;
export type Component = (typeof COMPONENTS)[number];
export const clusterPart = (name: string, component: Component) => `cluster/${name}/${component}`;
export const clusterFault = (name: string) => `cluster/${name}`;
/** The fault key of stopped node heartbeats (fault nodes-notready). */
export const nodesFault = (name: string) => `nodes/${name}`;

const stagesSource = path.join(import.meta.dirname, 'kwok', 'stages.yaml');

/**
 * kwok reads its stages once: it gets a copy named by their hash, so stages that
 * changed change its command line and `up` restarts it (see ensureComponent).
 */
function stagesFile(dataDir: string): string {
  const text = readFileSync(stagesSource);
  const file = path.join(
    dataDir,
    'kwok',
    `stages-${createHash('sha256').update(text).digest('hex').slice(0, 12)}.yaml`,
  );
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return file;
}
const CONTROLLERS = [
  'deployment-controller',
  'replicaset-controller',
  'statefulset-controller',
  'daemonset-controller',
  'job-controller',
  'cronjob-controller',
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  // A Service selects real endpoints (kwok gives pods IPs; ready follows the pod's Ready condition).
  'endpointslice-controller',
  'endpoints-controller',
  // Nodes whose heartbeats stop turn NotReady (Unknown), get the not-ready/unreachable taints and
  // their pods are marked not Ready; taint-eviction evicts from NoExecute-tainted nodes, as in a real cluster.
  'node-lifecycle-controller',
  'taint-eviction-controller',
];
/**
 * How long a node may miss heartbeats before the node-lifecycle controller calls it NotReady
 * (Kubernetes' default is 50 s); kwok's heartbeat stage (stack/kwok/stages.yaml) beats every 4-6 s.
 */
export const NODE_MONITOR_GRACE_SECONDS = 20;

interface Ctx {
  cfg: StackConfig;
  c: FleetCluster;
  files: ClusterFiles;
  p: ReturnType<typeof ports.cluster>;
  /** The URL handed out: the proxy in front of the apiserver. */
  server: string;
  /** The apiserver itself. */
  direct: string;
}

function ctxOf(cfg: StackConfig, c: FleetCluster): Ctx {
  const index = cfg.fleet.clusters.findIndex((x) => x.name === c.name);
  const p = ports.cluster(cfg.portBase, index);
  return {
    cfg,
    c,
    files: clusterFiles(cfg.dataDir, c.name),
    p,
    server: `https://127.0.0.1:${p.proxy}`,
    direct: `https://127.0.0.1:${p.apiserver}`,
  };
}

export function clusterInfo(cfg: StackConfig, c: FleetCluster) {
  const { files, server, direct } = ctxOf(cfg, c);
  return {
    name: c.name,
    region: c.region,
    ...(c.zone ? { zone: c.zone } : {}),
    provider: c.provider,
    labels: c.labels,
    apiserverUrl: server,
    kubeconfig: files.kubeconfig,
    directUrl: direct,
    directKubeconfig: files.directKubeconfig,
    ...(c.mirror ? { mirror: c.mirror } : {}),
    capacity: c.capacity,
    nodes: c.nodes,
  };
}

async function etcdHealthy(port: number): Promise<boolean> {
  const res = await httpRequest(`http://127.0.0.1:${port}/health`, { timeoutMs: 2000 }).catch(
    () => undefined,
  );
  return res?.status === 200 && res.body.includes('"health":"true"');
}

function spec(
  x: Ctx,
  component: Component,
): StartSpec & { ports: number[]; health: () => Promise<boolean>; timeoutMs: number } {
  const { cfg, files, p } = x;
  const name = clusterPart(x.c.name, component);
  const kube = (sub: string, args: string[]) => ({
    name,
    command: cfg.bins.kube,
    args: [sub, ...args],
    cwd: files.dir,
  });
  const alive = async () => true; // no health endpoint (secure port off): being alive after start is the check
  switch (component) {
    case 'etcd': {
      const client = `http://127.0.0.1:${p.etcdClient}`;
      const peer = `http://127.0.0.1:${p.etcdPeer}`;
      // prettier-ignore
      return { ...kube('etcd', [
        '--name', 'default', '--data-dir', files.etcdData,
        '--listen-client-urls', client, '--advertise-client-urls', client,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `default=${peer}`,
        '--unsafe-no-fsync', '--quota-backend-bytes', String(512 * 1024 * 1024), '--log-level', 'warn',
      ]), ports: [p.etcdClient, p.etcdPeer], health: () => etcdHealthy(p.etcdClient), timeoutMs: 30_000 };
    }
    case 'apiserver':
      // prettier-ignore
      return { ...kube('kube-apiserver', [
        `--etcd-servers=http://127.0.0.1:${p.etcdClient}`,
        `--secure-port=${p.apiserver}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
        `--cert-dir=${files.certDir}`, '--service-cluster-ip-range=10.0.0.0/24', '--allow-privileged=true',
        // The issuer is a name, not a route: the URL clients use, the same before and after the proxy came.
        `--service-account-issuer=https://127.0.0.1:${p.proxy}`,
        `--service-account-key-file=${files.saPub}`, `--service-account-signing-key-file=${files.saKey}`,
        `--token-auth-file=${files.tokenFile}`, '--authorization-mode=RBAC',
        '--enable-priority-and-fairness=false', '--profiling=false', '--endpoint-reconciler-type=none',
        // The default admission plugins, TaintNodesByCondition among them: new nodes start tainted
        // not-ready until the node-lifecycle controller sees them Ready and lifts the taint.
      ]), ports: [p.apiserver], health: () => apiserverReady(kubeTarget(files, x.direct)), timeoutMs: 120_000 };
    case 'controller-manager':
      // prettier-ignore
      return { ...kube('kube-controller-manager', [
        `--kubeconfig=${files.directKubeconfig}`, '--leader-elect=false', '--secure-port=0',
        `--controllers=${CONTROLLERS.join(',')}`, `--service-account-private-key-file=${files.saKey}`, '--profiling=false',
        `--node-monitor-grace-period=${NODE_MONITOR_GRACE_SECONDS}s`, '--node-monitor-period=2s',
      ]), ports: [], health: alive, timeoutMs: 10_000 };
    case 'scheduler':
      // prettier-ignore
      return { ...kube('kube-scheduler', [
        `--kubeconfig=${files.directKubeconfig}`, '--leader-elect=false', '--secure-port=0', '--profiling=false',
      ]), ports: [], health: alive, timeoutMs: 10_000 };
    case 'kwok':
      // prettier-ignore
      return {
        name, command: cfg.bins.kwok, cwd: files.dir, args: [
          `--kubeconfig=${files.directKubeconfig}`, `--config=${stagesFile(cfg.dataDir)}`,
          '--manage-all-nodes=false', '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
          '--cidr=10.244.0.0/16', '--node-ip=127.0.0.1',
          // No node leases: a restarted kwok (new holder identity) would otherwise leave the
          // nodes' pods alone until the old leases expire. Heartbeats are a stage instead.
          '--node-lease-duration-seconds=0',
          `--server-address=127.0.0.1:${p.kwok}`,
          // INFO logs every lease renewal and status patch (~9 MB a day per cluster); errors still show.
          '--v=WARN',
        ],
        ports: [p.kwok],
        health: async () => (await httpRequest(`http://127.0.0.1:${p.kwok}/healthz`, { timeoutMs: 2000 }).catch(() => undefined))?.status === 200,
        timeoutMs: 30_000,
      };
  }
}

const sameCommand = (rec: ProcRecord, s: StartSpec) =>
  JSON.stringify(rec.command) === JSON.stringify([s.command, ...s.args]);

/**
 * Starts a component unless it already runs; waits until healthy either way. One
 * that runs with other arguments (started by an older version of this file, with
 * other ports) is restarted.
 */
async function ensureComponent(x: Ctx, component: Component): Promise<{ rec: ProcRecord; started: boolean }> {
  const s = spec(x, component);
  let existing = readState(x.cfg.dataDir)?.processes[s.name];
  if (existing && isAlive(existing) && !sameCommand(existing, s)) {
    await stopProcess(x.cfg.dataDir, x.cfg.portBase, s.name, component === 'apiserver' ? 2_000 : undefined);
    existing = undefined;
  }
  if (existing && isAlive(existing)) {
    await waitFor(s.name, s.health, { timeoutMs: s.timeoutMs, rec: existing });
    return { rec: existing, started: false };
  }
  for (const port of s.ports) await assertPortFree(port, s.name);
  const rec = startProcess(x.cfg.dataDir, x.cfg.portBase, s);
  await waitFor(s.name, s.health, { timeoutMs: s.timeoutMs, rec, intervalMs: 200 });
  return { rec, started: true };
}

/** Brings the cluster up and opens its proxy listener once `proxyReady` (the proxy's start) resolves. */
export async function clusterUp(
  cfg: StackConfig,
  c: FleetCluster,
  log: (line: string) => void,
  proxyReady: Promise<unknown>,
): Promise<void> {
  const x = ctxOf(cfg, c);
  const t0 = Date.now();
  mkdirSync(x.files.dir, { recursive: true });
  ensureCredentials(x.files);
  const started: string[] = [];
  const ensure = async (component: Component) => {
    const r = await ensureComponent(x, component);
    if (r.started) started.push(component);
    return r.rec;
  };
  await ensure('etcd');
  await ensure('apiserver');
  writeKubeconfig(x.files, x.files.directKubeconfig, c.name, x.direct);
  writeKubeconfig(x.files, x.files.kubeconfig, c.name, x.server);
  const target = kubeTarget(x.files, x.direct);
  await ensureNodes(target, c);
  // `up` ends every fault: heartbeats stopped by nodes-notready start again.
  const resumed = await setHeartbeats(target, c, false);
  // The traffic routers' resource definitions register while the other components start.
  const crds = ensureDefinitions(target, upBundles());
  const recs = await Promise.all((['controller-manager', 'scheduler', 'kwok'] as const).map(ensure));
  const applied = await crds;
  await waitFor(
    `${c.name}: ${c.nodes} nodes Ready`,
    async () => (await readyNodes(target)).length === c.nodes,
    { timeoutMs: 60_000 },
  );
  const dead = recs.find((r) => !isAlive(r));
  if (dead) throw new Error(`${c.name}: ${dead.command.slice(0, 2).join(' ')} exited; see ${dead.log}`);
  if (resumed.length) await reReadyPods(target, resumed);
  await proxyReady;
  await proxyOpen(cfg, c);
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    delete s.faults[clusterFault(c.name)];
    delete s.faults[nodesFault(c.name)];
  });
  const what =
    (started.length ? `started ${started.join(', ')}` : 'already running') +
    (applied ? `; registered ${applied} resource definitions` : '');
  log(`cluster ${c.name}: up at ${x.server} (${what}; ${((Date.now() - t0) / 1000).toFixed(1)}s)`);
}

/** Stops every component: node agents first, then the apiserver, etcd last. */
export async function clusterDown(cfg: StackConfig, c: FleetCluster): Promise<void> {
  const stop = (component: Component) =>
    stopProcess(cfg.dataDir, cfg.portBase, clusterPart(c.name, component));
  await Promise.all([stop('kwok'), stop('scheduler'), stop('controller-manager')]);
  await stop('apiserver');
  await stop('etcd');
}

/** Fault: the API refuses connections; etcd keeps the data (see the top of this file). */
export async function clusterFaultDown(cfg: StackConfig, c: FleetCluster): Promise<void> {
  const stop = (component: Component, graceMs?: number) =>
    stopProcess(cfg.dataDir, cfg.portBase, clusterPart(c.name, component), graceMs);
  await proxyClose(cfg, c); // first: no client sees the apiserver die half-way through its answer
  await Promise.all([stop('kwok'), stop('scheduler'), stop('controller-manager')]);
  // The apiserver stops listening at once on SIGTERM, then drains open watches for up to
  // a minute: after a short grace a SIGKILL (a crash, as far as etcd cares) is as good.
  await stop('apiserver', 2_000);
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    s.faults[clusterFault(c.name)] = 'down';
  });
}

/** Ends the fault: starts what is not running and waits for /readyz and Ready nodes. */
export function clusterFaultUp(
  cfg: StackConfig,
  c: FleetCluster,
  log: (line: string) => void,
  proxyReady: Promise<unknown>,
): Promise<void> {
  return clusterUp(cfg, c, log, proxyReady);
}

/**
 * Fault nodes-notready: the cluster's fake nodes stop their heartbeats (kwok's node stages
 * skip them), the API server keeps serving. The node-lifecycle controller then calls them
 * NotReady (Ready=Unknown) after NODE_MONITOR_GRACE_SECONDS, taints them unreachable and
 * marks their pods not Ready. Returns at once (it does not wait for the controller).
 */
export async function nodesNotReady(cfg: StackConfig, c: FleetCluster): Promise<void> {
  const x = ctxOf(cfg, c);
  const target = kubeTarget(x.files, x.direct);
  if (!(await apiserverReady(target)))
    throw new Error(`${c.name}: its API server is not up (cluster-down?): nothing to stop the heartbeats of`);
  await setHeartbeats(target, c, true);
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    s.faults[nodesFault(c.name)] = 'heartbeats stopped';
  });
}

/**
 * Ends nodes-notready: heartbeats resume, the nodes are Ready (and untainted) again, and
 * the pods the controller marked not Ready meanwhile are Ready again, as their kubelets
 * would report. Waits for all of it.
 */
export async function nodesReady(cfg: StackConfig, c: FleetCluster): Promise<{ pods: number }> {
  const x = ctxOf(cfg, c);
  const target = kubeTarget(x.files, x.direct);
  const resumed = await setHeartbeats(target, c, false);
  await waitFor(
    `${c.name}: ${c.nodes} nodes Ready`,
    async () => (await readyNodes(target)).length === c.nodes,
    { timeoutMs: 60_000 },
  );
  const pods = await reReadyPods(target, resumed);
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    delete s.faults[nodesFault(c.name)];
  });
  return { pods };
}

export interface ComponentStatus {
  part: string;
  pid?: number;
  alive: boolean;
  healthy: boolean;
  /** Resident memory (VmRSS); counts pages shared with other processes in each of them. */
  rssBytes: number;
  /** Proportional set size: shared pages split among the processes sharing them. */
  pssBytes: number;
}

/**
 * Health of the cluster's processes, its Ready nodes and its proxy listener (`proxy`:
 * the proxy's view of it, undefined when the proxy does not answer). Active proxy
 * rules are a fault: `proxy: hang (all)`.
 */
export async function clusterStatus(
  cfg: StackConfig,
  c: FleetCluster,
  proxy: ProxyClusterView | undefined,
): Promise<{
  healthy: boolean;
  fault?: string;
  components: ComponentStatus[];
  readyNodes: number;
  proxyListening: boolean;
}> {
  const x = ctxOf(cfg, c);
  const state = readState(cfg.dataDir);
  const components = await Promise.all(
    COMPONENTS.map(async (component) => {
      const s = spec(x, component);
      const rec = state?.processes[s.name];
      const alive = isAlive(rec);
      const healthy = alive && (await s.health().catch(() => false));
      return {
        part: s.name,
        ...(rec && alive ? { pid: rec.pid } : {}),
        alive,
        healthy,
        ...memoryOf(rec),
      };
    }),
  );
  const apiUp = components.find((s) => s.part.endsWith('/apiserver'))?.healthy;
  const nodes = apiUp ? (await readyNodes(kubeTarget(x.files, x.direct)).catch(() => [])).length : 0;
  const proxyListening = Boolean(proxy?.listening) && (await portOpen(x.p.proxy));
  const faults = [
    state?.faults[clusterFault(c.name)],
    state?.faults[nodesFault(c.name)],
    proxy?.faulty ? `proxy: ${proxy.describe}` : undefined,
  ].filter(Boolean);
  return {
    healthy: components.every((s) => s.healthy) && nodes === c.nodes && proxyListening && !proxy?.faulty,
    ...(faults.length ? { fault: faults.join('; ') } : {}),
    components,
    readyNodes: nodes,
    proxyListening,
  };
}
