/**
 * What a cluster needs besides its processes: credentials (service-account
 * signing key, a random admin token), the kubeconfig file, a tiny REST client
 * for health checks and the fake Node objects kwok then keeps Ready.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { FleetCluster } from './config.ts';
import type { HttpResult } from './net.ts';
import { httpRequest } from './net.ts';

export interface ClusterFiles {
  dir: string;
  certDir: string;
  saKey: string;
  saPub: string;
  tokenFile: string;
  /** Handed out (stack.json): through the API-server proxy. */
  kubeconfig: string;
  /** The cluster's own components (controller-manager, scheduler, kwok): straight to the apiserver. */
  directKubeconfig: string;
  etcdData: string;
}

export function clusterFiles(dataDir: string, name: string): ClusterFiles {
  const dir = path.join(dataDir, 'clusters', name);
  return {
    dir,
    certDir: path.join(dir, 'pki', 'serving'),
    saKey: path.join(dir, 'pki', 'sa.key'),
    saPub: path.join(dir, 'pki', 'sa.pub'),
    tokenFile: path.join(dir, 'pki', 'tokens.csv'),
    kubeconfig: path.join(dir, 'kubeconfig'),
    directKubeconfig: path.join(dir, 'direct.kubeconfig'),
    etcdData: path.join(dir, 'etcd'),
  };
}

/** Creates the service-account key pair and the admin token once; later runs reuse them. */
export function ensureCredentials(f: ClusterFiles): void {
  mkdirSync(f.certDir, { recursive: true, mode: 0o700 });
  if (!existsSync(f.saKey) || !existsSync(f.saPub)) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(f.saKey, privateKey, { mode: 0o600 });
    writeFileSync(f.saPub, publicKey, { mode: 0o600 });
  }
  if (!existsSync(f.tokenFile)) {
    writeFileSync(f.tokenFile, `${randomBytes(24).toString('hex')},admin,admin,system:masters\n`, {
      mode: 0o600,
    });
  }
}

export function adminToken(f: ClusterFiles): string {
  return readFileSync(f.tokenFile, 'utf8').split(',')[0]!.trim();
}

/** The apiserver's self-signed serving bundle (leaf + its CA), written by the apiserver on first start. */
export function servingBundle(f: ClusterFiles): string | undefined {
  const file = path.join(f.certDir, 'apiserver.crt');
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

/** Writes a kubeconfig for `server` (the proxy's URL or the apiserver's own) to `file`, mode 0600. */
export function writeKubeconfig(f: ClusterFiles, file: string, name: string, server: string): void {
  const ca = servingBundle(f);
  if (!ca) throw new Error(`${name}: no serving certificate in ${f.certDir} yet`);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name, cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } },
    ],
    users: [{ name: `${name}-admin`, user: { token: adminToken(f) } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin`, namespace: 'default' } }],
    'current-context': name,
  };
  writeFileSync(file, toYaml(config), { mode: 0o600 });
}

export interface KubeTarget {
  server: string;
  token: string;
  ca: string | undefined;
}

export function kubeTarget(f: ClusterFiles, server: string): KubeTarget {
  return { server, token: adminToken(f), ca: servingBundle(f) };
}

export function kubeRequest(
  t: KubeTarget,
  method: string,
  apiPath: string,
  body?: unknown,
  opts: { contentType?: string; accept?: string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return httpRequest(`${t.server}${apiPath}`, {
    method,
    ca: t.ca,
    headers: {
      authorization: `Bearer ${t.token}`,
      accept: opts.accept ?? 'application/json',
      ...(opts.contentType ? { 'content-type': opts.contentType } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMs: opts.timeoutMs ?? 5000,
  });
}

export async function apiserverReady(t: KubeTarget): Promise<boolean> {
  if (!t.ca) return false;
  const res = await kubeRequest(t, 'GET', '/readyz').catch(() => undefined);
  return res?.status === 200;
}

export const fakeNodeName = (cluster: string, i: number) => `${cluster}-node-${i}`;

/** Creates the cluster's fake nodes (idempotent). kwok manages nodes with the annotation kwok.x-k8s.io/node=fake. */
export async function ensureNodes(t: KubeTarget, c: FleetCluster): Promise<void> {
  const resources = { cpu: '32', memory: '128Gi', pods: '250', 'ephemeral-storage': '1Ti' };
  for (let i = 0; i < c.nodes; i++) {
    const name = fakeNodeName(c.name, i);
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: {
          type: 'kwok',
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'node.kubernetes.io/instance-type': 'kwok',
          'topology.kubernetes.io/region': c.region,
          ...(c.zone ? { 'topology.kubernetes.io/zone': c.zone } : {}),
        },
        annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      },
      spec: {},
      status: {
        allocatable: resources,
        capacity: resources,
        nodeInfo: {
          architecture: 'amd64',
          operatingSystem: 'linux',
          kubeletVersion: 'kwok',
          kubeProxyVersion: 'kwok',
          containerRuntimeVersion: 'kwok',
          kernelVersion: 'kwok',
          osImage: 'kwok',
          bootID: '',
          machineID: '',
          systemUUID: '',
        },
      },
    };
    const res = await kubeRequest(t, 'POST', '/api/v1/nodes', node);
    if (res.status !== 201 && res.status !== 409)
      throw new Error(`${c.name}: creating node ${name}: HTTP ${res.status} ${res.body}`);
  }
}

/** Taints the node-lifecycle controller (and the TaintNodesByCondition admission plugin) put on a node that is not Ready. */
export const NOT_READY_TAINTS = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'];

/** Names of the cluster's fake nodes that report Ready=True and carry no not-ready taint (pods can land there). */
export async function readyNodes(t: KubeTarget): Promise<string[]> {
  const res = await kubeRequest(t, 'GET', '/api/v1/nodes?labelSelector=type%3Dkwok');
  if (res.status !== 200) return [];
  const list = JSON.parse(res.body) as {
    items: {
      metadata: { name: string };
      spec?: { taints?: { key: string }[] };
      status?: { conditions?: { type: string; status: string }[] };
    }[];
  };
  return list.items
    .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .filter((n) => !n.spec?.taints?.some((x) => NOT_READY_TAINTS.includes(x.key)))
    .map((n) => n.metadata.name);
}

/** On a fake node: kwok's node stages leave it alone (no heartbeats), as if its kubelet were cut off. */
export const HEARTBEAT_ANNOTATION = 'stack.flotilla.dev/heartbeat';

/** Stops or resumes the heartbeats of the cluster's fake nodes; returns the nodes it changed. */
export async function setHeartbeats(t: KubeTarget, c: FleetCluster, stopped: boolean): Promise<string[]> {
  const res = await kubeRequest(t, 'GET', '/api/v1/nodes?labelSelector=type%3Dkwok');
  if (res.status !== 200)
    throw new Error(`${c.name}: listing nodes: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const nodes = (
    JSON.parse(res.body) as { items: { metadata: { name: string; annotations?: Record<string, string> } }[] }
  ).items;
  const changed = nodes.filter(
    (n) => (n.metadata.annotations?.[HEARTBEAT_ANNOTATION] === 'stopped') !== stopped,
  );
  for (const n of changed) {
    const patch = { metadata: { annotations: { [HEARTBEAT_ANNOTATION]: stopped ? 'stopped' : null } } };
    const r = await kubeRequest(t, 'PATCH', `/api/v1/nodes/${n.metadata.name}`, patch, {
      contentType: 'application/merge-patch+json',
    });
    if (r.status !== 200)
      throw new Error(`${c.name}: node ${n.metadata.name}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  }
  return changed.map((n) => n.metadata.name);
}

interface PodView {
  metadata: { name: string; namespace: string; deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean }[];
  };
}

/**
 * What a kubelet does when it is back: pods the node-lifecycle controller marked not Ready
 * while their node was unreachable (Ready=False, yet every container ready) are Ready again.
 * Pods not Ready for their own reasons (containers not ready: unready, crashloop) stay so.
 * Returns how many it changed.
 */
export async function reReadyPods(t: KubeTarget, nodes: string[]): Promise<number> {
  const res = await kubeRequest(t, 'GET', '/api/v1/pods?fieldSelector=status.phase%3DRunning', undefined, {
    timeoutMs: 30_000,
  });
  if (res.status !== 200) throw new Error(`listing pods: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  const marked = (JSON.parse(res.body) as { items: PodView[] }).items.filter(
    (p) =>
      !p.metadata.deletionTimestamp &&
      nodes.includes(p.spec?.nodeName ?? '') &&
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') &&
      (p.status.containerStatuses ?? []).length > 0 &&
      p.status.containerStatuses!.every((c) => c.ready),
  );
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  for (const p of marked) {
    const patch = { status: { conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } };
    const r = await kubeRequest(
      t,
      'PATCH',
      `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}/status`,
      patch,
      { contentType: 'application/strategic-merge-patch+json' },
    );
    if (r.status !== 200 && r.status !== 404)
      throw new Error(
        `pod ${p.metadata.namespace}/${p.metadata.name}: HTTP ${r.status} ${r.body.slice(0, 300)}`,
      );
  }
  return marked.length;
}
