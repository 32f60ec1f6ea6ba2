/**
 * Temporal: the CLI's dev server with a persistent SQLite file, UI on, the
 * search attributes Flotilla's workflows upsert. Restarting on an existing file
 * keeps workflows (and re-registering existing search attributes is a no-op).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { StackConfig } from './config.ts';
import { ports } from './config.ts';
import { assertPortFree } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor } from './process.ts';

export const TEMPORAL_PART = 'temporal';
export const TEMPORAL_NAMESPACE = 'default';
/** Same names as workflows/messages.ts (SA_APP, SA_PHASE, SA_TYPE); kept literal so the stack loads no workflow code. */
export const SEARCH_ATTRIBUTES = ['FlotillaApp', 'FlotillaPhase', 'FlotillaType'] as const;

export function temporalInfo(cfg: StackConfig) {
  const p = ports.temporal(cfg.portBase);
  return { address: `127.0.0.1:${p.grpc}`, namespace: TEMPORAL_NAMESPACE, uiUrl: `http://127.0.0.1:${p.ui}` };
}

/**
 * Loads the Temporal client (lazily: the stack's other commands do not need it). Loading
 * blocks the event loop for a second or two on a busy machine: do it before health checks
 * run side by side with short timeouts, or they all time out at once.
 */
export const loadTemporalClient = () => import('@temporalio/client');

/** Healthy = the frontend answers over gRPC, the namespace exists and our search attributes are registered. */
export async function temporalHealthy(cfg: StackConfig): Promise<boolean> {
  // A machine busy starting six control planes can keep a healthy server from answering within a second or
  // two: ask up to three times, with room, before calling it unhealthy (measured in CI: one miss in 58 files).
  for (let attempt = 1; attempt <= 3; attempt++) {
    if (await temporalAnswers(cfg)) return true;
  }
  return false;
}

async function temporalAnswers(cfg: StackConfig): Promise<boolean> {
  const { Connection } = await loadTemporalClient();
  const info = temporalInfo(cfg);
  let conn: Awaited<ReturnType<typeof Connection.connect>> | undefined;
  try {
    conn = await Connection.connect({ address: info.address, connectTimeout: 3000 });
    const deadline = () => new Date(Date.now() + 5000);
    await conn.withDeadline(deadline(), () => conn!.workflowService.getSystemInfo({}));
    await conn.withDeadline(deadline(), () =>
      conn!.workflowService.describeNamespace({ namespace: info.namespace }),
    );
    const sa = await conn.withDeadline(deadline(), () =>
      conn!.operatorService.listSearchAttributes({ namespace: info.namespace }),
    );
    const custom = sa.customAttributes ?? {};
    return SEARCH_ATTRIBUTES.every((k) => k in custom);
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => {});
  }
}

export async function temporalUp(cfg: StackConfig, log: (line: string) => void): Promise<ProcRecord> {
  const existing = readState(cfg.dataDir)?.processes[TEMPORAL_PART];
  if (existing && isAlive(existing)) {
    await waitFor('temporal', () => temporalHealthy(cfg), { timeoutMs: 60_000, rec: existing });
    log('temporal: already running');
    return existing;
  }
  const p = ports.temporal(cfg.portBase);
  for (const port of Object.values(p)) await assertPortFree(port, 'temporal');
  const dir = path.join(cfg.dataDir, 'temporal');
  mkdirSync(dir, { recursive: true });
  // prettier-ignore
  const args = [
    'server', 'start-dev', '--headless=false', '--ip', '127.0.0.1',
    '--port', String(p.grpc), '--ui-port', String(p.ui), '--http-port', String(p.http), '--metrics-port', String(p.metrics),
    '--db-filename', path.join(dir, 'temporal.db'), '--namespace', TEMPORAL_NAMESPACE,
    ...SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k}=Keyword`]),
    '--log-level', 'warn',
  ];
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: TEMPORAL_PART,
    command: cfg.bins.temporal,
    args,
    cwd: dir,
  });
  await waitFor('temporal', () => temporalHealthy(cfg), { timeoutMs: 90_000, rec, intervalMs: 300 });
  log(`temporal: up at ${temporalInfo(cfg).address}, UI ${temporalInfo(cfg).uiUrl}`);
  return rec;
}

export function temporalDown(cfg: StackConfig): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, TEMPORAL_PART);
}
