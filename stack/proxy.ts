/**
 * The API-server proxy as a part of the stack (the process is stack/proxy/main.ts):
 * starting and stopping it, registering each cluster's listener, and its fault
 * rules. It is what the handed-out kubeconfigs point at; the clusters' own
 * components talk to their apiserver directly, so a proxy fault never stops a
 * cluster.
 */
import path from 'node:path';
import type { FleetCluster, StackConfig } from './config.ts';
import { ports } from './config.ts';
import { clusterFiles } from './kube.ts';
import { assertPortFree, httpRequest } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor } from './process.ts';
import type { ActiveRule, ProxyRule } from './proxy/rules.ts';

export const PROXY_PART = 'proxy';
const main = path.join(import.meta.dirname, 'proxy', 'main.ts');

/** What the proxy reports for one cluster (GET /v1/clusters/<name>). */
export interface ProxyClusterView {
  name: string;
  listening: boolean;
  port?: number;
  upstreamPort?: number;
  rules: ActiveRule[];
  /** True while a rule can still take a request. */
  faulty: boolean;
  /** The active rules in one line, e.g. "hang (all)". */
  describe: string;
  /** Connections held open by hang / drop-reply. */
  held: number;
  connections: number;
  counts: Record<'requests' | 'forwarded' | 'hang' | 'drop-reply' | 'error' | 'delay', number>;
}

export const proxyControlUrl = (cfg: StackConfig) => `http://127.0.0.1:${ports.proxyControl(cfg.portBase)}`;

async function call<T>(cfg: StackConfig, method: string, apiPath: string, body?: unknown): Promise<T> {
  const res = await httpRequest(`${proxyControlUrl(cfg)}${apiPath}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMs: 10_000,
  });
  if (res.status !== 200) {
    let message = res.body;
    try {
      message = (JSON.parse(res.body) as { message?: string }).message ?? res.body;
    } catch {
      /* not JSON */
    }
    throw new Error(`proxy ${method} ${apiPath}: HTTP ${res.status}: ${message}`);
  }
  return JSON.parse(res.body) as T;
}

export async function proxyHealthy(cfg: StackConfig, timeoutMs = 1000): Promise<boolean> {
  const res = await httpRequest(`${proxyControlUrl(cfg)}/healthz`, { timeoutMs }).catch(
    () => undefined,
  );
  return res?.status === 200;
}

/** Starts the proxy unless it runs; waits for its control endpoint either way. */
export async function proxyUp(cfg: StackConfig, log: (line: string) => void): Promise<ProcRecord> {
  const existing = readState(cfg.dataDir)?.processes[PROXY_PART];
  if (existing && isAlive(existing)) {
    await waitFor(PROXY_PART, () => proxyHealthy(cfg), { timeoutMs: 15_000, rec: existing });
    return existing;
  }
  const control = ports.proxyControl(cfg.portBase);
  await assertPortFree(control, PROXY_PART);
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: PROXY_PART,
    command: process.execPath,
    args: [main, '--control-port', String(control)],
    cwd: cfg.root,
  });
  await waitFor(PROXY_PART, () => proxyHealthy(cfg), { timeoutMs: 30_000, rec, intervalMs: 100 });
  log(`proxy: up, control ${proxyControlUrl(cfg)}`);
  return rec;
}

export function proxyDown(cfg: StackConfig): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, PROXY_PART);
}

const clusterPorts = (cfg: StackConfig, c: FleetCluster) =>
  ports.cluster(
    cfg.portBase,
    cfg.fleet.clusters.findIndex((x) => x.name === c.name),
  );

/** Opens (or refreshes) the cluster's listener in front of its apiserver. */
export async function proxyOpen(cfg: StackConfig, c: FleetCluster): Promise<ProxyClusterView> {
  const p = clusterPorts(cfg, c);
  const f = clusterFiles(cfg.dataDir, c.name);
  return call(cfg, 'PUT', `/v1/clusters/${c.name}`, {
    port: p.proxy,
    upstreamPort: p.apiserver,
    certFile: path.join(f.certDir, 'apiserver.crt'),
    keyFile: path.join(f.certDir, 'apiserver.key'),
  });
}

/** Closes the cluster's listener and its connections; a no-op when the proxy does not run. */
export async function proxyClose(cfg: StackConfig, c: FleetCluster): Promise<void> {
  if (!isAlive(readState(cfg.dataDir)?.processes[PROXY_PART])) return;
  await call(cfg, 'DELETE', `/v1/clusters/${c.name}`).catch((err: Error) => {
    if (!/HTTP 404/.test(err.message)) throw err;
  });
}

export function proxySetRules(
  cfg: StackConfig,
  cluster: string,
  rules: ProxyRule[],
): Promise<ProxyClusterView> {
  return call(cfg, 'PUT', `/v1/clusters/${cluster}/rules`, { rules });
}

/** Every registered cluster's view, or undefined when the proxy does not answer. */
export async function proxyViews(cfg: StackConfig): Promise<ProxyClusterView[] | undefined> {
  if (!isAlive(readState(cfg.dataDir)?.processes[PROXY_PART])) return undefined;
  return call<{ clusters: ProxyClusterView[] }>(cfg, 'GET', '/v1/clusters')
    .then((r) => r.clusters)
    .catch(() => undefined);
}
