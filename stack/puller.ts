/**
 * The image puller as a part of the stack (the process is stack/puller/main.ts):
 * its config file (each cluster's direct kubeconfig, the registries' hosts),
 * starting and stopping it, and what it reports.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StackConfig } from './config.ts';
import { ports } from './config.ts';
import { clusterFiles } from './kube.ts';
import { assertPortFree, httpRequest } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor } from './process.ts';
import { registryInfo } from './registry.ts';

export const PULLER_PART = 'puller';
const main = path.join(import.meta.dirname, 'puller', 'main.ts');

/** What the puller reports for one cluster (GET /v1/state). */
export interface PullerClusterView {
  name: string;
  /** Its watch of the cluster's pods is open. */
  connected: boolean;
  lastError?: string;
  counts: { pulled: number; failed: number };
  /** Pods whose images are not all there yet. */
  waiting: {
    namespace: string;
    name: string;
    state: 'checking' | 'failed' | 'backoff';
    attempt: number;
    nextRetryAt?: string;
    message?: string;
  }[];
}

export const pullerUrl = (cfg: StackConfig) => `http://127.0.0.1:${ports.puller(cfg.portBase)}`;
/** The behaviour table (stack/behaviours.ts writes it, the puller reads it). */
export const behavioursFile = (cfg: StackConfig) => path.join(cfg.dataDir, 'behaviours.json');

export async function pullerHealthy(cfg: StackConfig, timeoutMs = 1000): Promise<boolean> {
  const res = await httpRequest(`${pullerUrl(cfg)}/healthz`, { timeoutMs }).catch(() => undefined);
  return res?.status === 200;
}

/** Writes the config; true when it changed (a running puller then needs a restart). */
function writeConfig(cfg: StackConfig): { file: string; changed: boolean } {
  const dir = path.join(cfg.dataDir, 'puller');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.json');
  const config = {
    port: ports.puller(cfg.portBase),
    clusters: cfg.fleet.clusters.map((c) => ({
      name: c.name,
      kubeconfig: clusterFiles(cfg.dataDir, c.name).directKubeconfig,
    })),
    registries: cfg.fleet.registries.map((r) => registryInfo(cfg, r).host),
    behavioursFile: behavioursFile(cfg),
  };
  const text = JSON.stringify(config, null, 2) + '\n';
  const changed = !existsSync(file) || readFileSync(file, 'utf8') !== text;
  if (changed) writeFileSync(file, text);
  return { file, changed };
}

/**
 * Starts the puller unless it runs with the same config; waits for it either way.
 * It needs no cluster to be up: its watches retry until their apiserver answers.
 */
export async function pullerUp(cfg: StackConfig, log: (line: string) => void): Promise<ProcRecord> {
  const { file, changed } = writeConfig(cfg);
  let existing = readState(cfg.dataDir)?.processes[PULLER_PART];
  if (existing && isAlive(existing) && changed) {
    await stopProcess(cfg.dataDir, cfg.portBase, PULLER_PART);
    existing = undefined;
  }
  if (existing && isAlive(existing)) {
    await waitFor(PULLER_PART, () => pullerHealthy(cfg), { timeoutMs: 15_000, rec: existing });
    return existing;
  }
  await assertPortFree(ports.puller(cfg.portBase), PULLER_PART);
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: PULLER_PART,
    command: process.execPath,
    args: [main, '--config', file],
    cwd: cfg.root,
  });
  await waitFor(PULLER_PART, () => pullerHealthy(cfg), { timeoutMs: 30_000, rec, intervalMs: 100 });
  log(`puller: up, state on ${pullerUrl(cfg)}/v1/state`);
  return rec;
}

export function pullerDown(cfg: StackConfig): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, PULLER_PART);
}

/** Waits until the puller watches the pods of each of `clusters` (a pod created before might wait for its retry). */
export async function pullerWatching(cfg: StackConfig, clusters: string[]): Promise<void> {
  const rec = readState(cfg.dataDir)?.processes[PULLER_PART];
  await waitFor(
    `puller: watching ${clusters.join(', ')}`,
    async () => {
      const views = await pullerViews(cfg);
      return clusters.every((name) => views?.find((v) => v.name === name)?.connected);
    },
    { timeoutMs: 30_000, intervalMs: 100, ...(rec ? { rec } : {}) },
  );
}

/** Each cluster's view, or undefined when the puller does not answer. */
export async function pullerViews(cfg: StackConfig): Promise<PullerClusterView[] | undefined> {
  if (!isAlive(readState(cfg.dataDir)?.processes[PULLER_PART])) return undefined;
  const res = await httpRequest(`${pullerUrl(cfg)}/v1/state`, { timeoutMs: 2000 }).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  return (JSON.parse(res.body) as { clusters: PullerClusterView[] }).clusters;
}
