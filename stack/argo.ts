/**
 * Argo Rollouts' controller beside one stack cluster, for the side-by-side benchmark:
 * its resource definitions registered in that cluster and the controller (built from
 * the Go module proxy by `scripts/build-binaries.sh argo`, cached like the stack's other
 * binaries) running against it as a supervised process `argo/<cluster>`, recorded in the
 * data dir's state, stopped by argoDown or by the stack's `down`.
 *
 *   const argo = await argoUp('shenzhen', stackOptions(stack));   // builds on first use (~10 min of CPU)
 *   ... kubectl-free: create argoproj.io/v1alpha1 Rollouts with the cluster's kubeconfig ...
 *   await argoDown('shenzhen', stackOptions(stack));
 *
 * The controller talks straight to the apiserver (the cluster's direct kubeconfig, as a
 * controller inside the cluster would: proxy faults do not reach it), watches every
 * namespace, no leader election, metrics on B+105+10i and healthz on B+106+10i.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { StackConfig, StackOptions } from './config.ts';
import { ports, resolveConfig } from './config.ts';
import { argoPaths } from './argo-paths.ts';
import { ensureDefinitions } from './crds.ts';
import { apiserverReady, clusterFiles, kubeTarget } from './kube.ts';
import { assertPortFree, httpRequest } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor, withLock } from './process.ts';

export const argoPart = (cluster: string) => `argo/${cluster}`;

export interface ArgoInfo {
  cluster: string;
  version: string;
  pid: number;
  /** Prometheus metrics of the controller. */
  metricsUrl: string;
  healthzUrl: string;
  log: string;
}

function clusterOf(cfg: StackConfig, name: string) {
  const index = cfg.fleet.clusters.findIndex((c) => c.name === name);
  if (index < 0)
    throw new Error(`no cluster "${name}" (have ${cfg.fleet.clusters.map((c) => c.name).join(', ')})`);
  const p = ports.cluster(cfg.portBase, index);
  return {
    c: cfg.fleet.clusters[index]!,
    metrics: p.proxy + 5,
    healthz: p.proxy + 6,
    apiserver: p.apiserver,
  };
}

/** The controller's health endpoint for `cluster` (whether or not it runs). */
export function argoHealthzUrl(cfg: StackConfig, cluster: string): string {
  return `http://127.0.0.1:${clusterOf(cfg, cluster).healthz}/healthz`;
}

/** Builds the controller (and copies its definitions) when they are not cached yet. */
export function ensureArgoBinary(log: (line: string) => void = () => {}): void {
  const { bin, crds, version } = argoPaths();
  if (existsSync(bin) && existsSync(crds)) return;
  log(
    `argo: building Argo Rollouts v${version} (once; ~35 min on 2 busy cores, ~10 min of CPU): scripts/build-binaries.sh argo`,
  );
  execFileSync('bash', ['scripts/build-binaries.sh', 'argo'], {
    cwd: resolveConfig().root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (!existsSync(bin)) throw new Error(`still missing after the build: ${bin}`);
}

async function healthy(url: string): Promise<boolean> {
  const res = await httpRequest(url, { timeoutMs: 1000 }).catch(() => undefined);
  return res?.status === 200;
}

/**
 * Registers Argo Rollouts' resource definitions in `cluster` and runs its controller
 * against it (left running when it already does); waits until the controller is healthy.
 */
export async function argoUp(
  cluster: string,
  opts: StackOptions & { log?: (line: string) => void } = {},
): Promise<ArgoInfo> {
  const log = opts.log ?? (() => {});
  const cfg = resolveConfig(opts);
  const x = clusterOf(cfg, cluster);
  ensureArgoBinary(log);
  const { bin, version } = argoPaths();
  const files = clusterFiles(cfg.dataDir, cluster);
  const target = kubeTarget(files, `https://127.0.0.1:${x.apiserver}`);
  if (!(await apiserverReady(target)))
    throw new Error(`${cluster}: its API server is not up: \`npm run stack -- up\` first`);
  const applied = await ensureDefinitions(target, ['argo-rollouts'], { timeoutMs: 120_000 });
  const part = argoPart(cluster);
  // prettier-ignore
  const args = [
    `--kubeconfig=${files.directKubeconfig}`, `--metricsPort=${x.metrics}`, `--healthzPort=${x.healthz}`,
    '--leader-elect=false', '--loglevel=info', '--kloglevel=0',
  ];
  const healthzUrl = argoHealthzUrl(cfg, cluster);
  const rec = await withLock(cfg.dataDir, `argo up ${cluster}`, async (): Promise<ProcRecord> => {
    const existing = readState(cfg.dataDir)?.processes[part];
    if (existing && isAlive(existing) && JSON.stringify(existing.command) === JSON.stringify([bin, ...args]))
      return existing;
    if (existing && isAlive(existing)) await stopProcess(cfg.dataDir, cfg.portBase, part);
    await assertPortFree(x.metrics, part);
    await assertPortFree(x.healthz, part);
    return startProcess(cfg.dataDir, cfg.portBase, {
      name: part,
      command: bin,
      args,
      cwd: files.dir,
      // Where it looks for its notification settings (none here: it logs that and goes on).
      env: { ...process.env, POD_NAMESPACE: 'argo-rollouts' },
    });
  });
  await waitFor(part, () => healthy(healthzUrl), { timeoutMs: 60_000, rec, intervalMs: 200 });
  log(
    `argo: Argo Rollouts v${version} controller on ${cluster} (pid ${rec.pid}${applied ? `; registered ${applied} resource definitions` : ''})`,
  );
  return {
    cluster,
    version,
    pid: rec.pid,
    metricsUrl: `http://127.0.0.1:${x.metrics}/metrics`,
    healthzUrl,
    log: rec.log,
  };
}

/** Stops the controller of `cluster` (its resource definitions and Rollouts stay). */
export async function argoDown(cluster: string, opts: StackOptions = {}): Promise<boolean> {
  const cfg = resolveConfig(opts);
  clusterOf(cfg, cluster);
  return withLock(cfg.dataDir, `argo down ${cluster}`, () =>
    stopProcess(cfg.dataDir, cfg.portBase, argoPart(cluster)),
  );
}
