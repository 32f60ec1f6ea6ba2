/**
 * Prometheus and the metrics target as parts of the stack.
 *
 *  - `prometheus`: Debian's `prometheus` (2.42) with our own config (no Debian service),
 *    storage in `<data>/prometheus/data`, scrape and evaluation interval 1 s, on
 *    127.0.0.1:B+6. It scrapes the metrics target, and every target in the
 *    data dir's `prometheus/scrape-targets.json` (file_sd: Prometheus picks up a
 *    change within a second or two, no restart), which `addScrapeTarget` writes.
 *  - `metrics-target`: stack/metrics/main.ts on 127.0.0.1:B+7, made-up request
 *    counters per application, version and cluster, set at run time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { z } from 'zod';
import type { StackConfig } from './config.ts';
import { ports } from './config.ts';
import type { Traffic, TrafficFilter, TrafficInput } from './metrics/traffic.ts';
import { issues, TrafficFilterSchema, TrafficSchema } from './metrics/traffic.ts';
import { assertPortFree, httpRequest } from './net.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, readState, startProcess, stopProcess, waitFor } from './process.ts';

export const PROMETHEUS_PART = 'prometheus';
export const METRICS_PART = 'metrics-target';
export const PROMETHEUS_BIN = process.env.FLOTILLA_PROMETHEUS_BIN ?? 'prometheus';
/** The job label of the metrics target's series. */
export const METRICS_JOB = 'metrics-target';
const main = path.join(import.meta.dirname, 'metrics', 'main.ts');

export const prometheusUrl = (cfg: StackConfig) => `http://127.0.0.1:${ports.prometheus(cfg.portBase)}`;
export const metricsTargetUrl = (cfg: StackConfig) => `http://127.0.0.1:${ports.metricsTarget(cfg.portBase)}`;
const promDir = (cfg: StackConfig) => path.join(cfg.dataDir, 'prometheus');
export const scrapeTargetsFile = (cfg: StackConfig) => path.join(promDir(cfg), 'scrape-targets.json');

// ---------------------------------------------------------------- scrape targets

/** One extra scrape target: a job name (its `job` label) and the URL of its metrics. */
export const ScrapeTargetSchema = z
  .object({
    job: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_-]{0,62}$/, 'letters, digits, _ and -'),
    url: z
      .url({ protocol: /^https?$/ })
      .refine((u) => !new URL(u).username && !new URL(u).password, 'no credentials in the URL'),
    /** More labels on every series of the target. */
    labels: z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/), z.string()).default({}),
  })
  .strict();
export type ScrapeTarget = z.infer<typeof ScrapeTargetSchema>;

/** The file_sd entry of a target: Prometheus takes scheme and path from the `__` labels. */
interface FileSdGroup {
  targets: string[];
  labels: Record<string, string>;
}

const toGroup = (t: ScrapeTarget): FileSdGroup => {
  const u = new URL(t.url);
  return {
    targets: [u.host],
    labels: {
      ...t.labels,
      job: t.job,
      __scheme__: u.protocol.replace(':', ''),
      __metrics_path__: u.pathname || '/metrics',
    },
  };
};

const fromGroup = (g: FileSdGroup): ScrapeTarget => {
  const { job, __scheme__: scheme, __metrics_path__: p, ...labels } = g.labels;
  return { job: job!, url: `${scheme ?? 'http'}://${g.targets[0]}${p ?? '/metrics'}`, labels };
};

export function readScrapeTargets(cfg: StackConfig): ScrapeTarget[] {
  const file = scrapeTargetsFile(cfg);
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, 'utf8')) as FileSdGroup[]).map(fromGroup);
}

/** Writes the file_sd file atomically (a reader never sees half of it). */
function writeScrapeTargets(cfg: StackConfig, targets: ScrapeTarget[]): void {
  const file = scrapeTargetsFile(cfg);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(targets.map(toGroup), null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Adds a target, or replaces the one with the same job and URL. */
export function addScrapeTargetTo(cfg: StackConfig, target: ScrapeTarget): ScrapeTarget[] {
  const parsed = ScrapeTargetSchema.safeParse(target);
  if (!parsed.success) throw new Error(`bad scrape target: ${issues(parsed.error)}`);
  if (parsed.data.job === METRICS_JOB) throw new Error(`job "${METRICS_JOB}" is the stack's own`);
  const rest = readScrapeTargets(cfg).filter(
    (t) => !(t.job === parsed.data.job && t.url === parsed.data.url),
  );
  const next = [...rest, parsed.data];
  writeScrapeTargets(cfg, next);
  return next;
}

/** Removes a job's targets (only the one at `url` when given); returns what is left. */
export function removeScrapeTargetFrom(cfg: StackConfig, job: string, url?: string): ScrapeTarget[] {
  const next = readScrapeTargets(cfg).filter((t) => !(t.job === job && (!url || t.url === url)));
  writeScrapeTargets(cfg, next);
  return next;
}

// ---------------------------------------------------------------- prometheus

function writePrometheusConfig(cfg: StackConfig): { file: string; changed: boolean } {
  const dir = promDir(cfg);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  if (!existsSync(scrapeTargetsFile(cfg))) writeScrapeTargets(cfg, []);
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [
      {
        job_name: METRICS_JOB,
        static_configs: [{ targets: [`127.0.0.1:${ports.metricsTarget(cfg.portBase)}`] }],
      },
      {
        job_name: 'prometheus',
        static_configs: [{ targets: [`127.0.0.1:${ports.prometheus(cfg.portBase)}`] }],
      },
      {
        // Its entries set their own job label (and scheme and path), so this name shows nowhere.
        job_name: 'scrape-targets',
        file_sd_configs: [{ files: [scrapeTargetsFile(cfg)], refresh_interval: '5s' }],
      },
    ],
  };
  const file = path.join(dir, 'prometheus.yml');
  const text = `# Written by stack/prometheus.ts on every up; extra targets go in ${path.basename(scrapeTargetsFile(cfg))}.\n${toYaml(config)}`;
  const changed = !existsSync(file) || readFileSync(file, 'utf8') !== text;
  if (changed) writeFileSync(file, text);
  return { file, changed };
}

export async function prometheusHealthy(cfg: StackConfig, timeoutMs = 1000): Promise<boolean> {
  const res = await httpRequest(`${prometheusUrl(cfg)}/-/ready`, { timeoutMs }).catch(() => undefined);
  return res?.status === 200;
}

function requirePrometheus(): void {
  try {
    execFileSync(PROMETHEUS_BIN, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      `${PROMETHEUS_BIN} not found or not runnable: run \`npm run bootstrap\` (it installs Debian's prometheus), or set FLOTILLA_PROMETHEUS_BIN`,
    );
  }
}

/** Starts Prometheus unless it runs with the same config; waits until it is ready either way. */
export async function prometheusUp(cfg: StackConfig, log: (line: string) => void): Promise<ProcRecord> {
  const { file, changed } = writePrometheusConfig(cfg);
  const port = ports.prometheus(cfg.portBase);
  // prettier-ignore
  const args = [
    `--config.file=${file}`, `--storage.tsdb.path=${path.join(promDir(cfg), 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=2d',
    '--log.level=warn', '--web.enable-lifecycle',
  ];
  let existing = readState(cfg.dataDir)?.processes[PROMETHEUS_PART];
  const same = existing && JSON.stringify(existing.command) === JSON.stringify([PROMETHEUS_BIN, ...args]);
  if (existing && isAlive(existing) && (changed || !same)) {
    await stopProcess(cfg.dataDir, cfg.portBase, PROMETHEUS_PART);
    existing = undefined;
  }
  if (existing && isAlive(existing)) {
    await waitFor(PROMETHEUS_PART, () => prometheusHealthy(cfg), { timeoutMs: 30_000, rec: existing });
    return existing;
  }
  requirePrometheus();
  await assertPortFree(port, PROMETHEUS_PART);
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: PROMETHEUS_PART,
    command: PROMETHEUS_BIN,
    args,
    cwd: promDir(cfg),
  });
  await waitFor(PROMETHEUS_PART, () => prometheusHealthy(cfg), { timeoutMs: 60_000, rec, intervalMs: 100 });
  log(`prometheus: up at ${prometheusUrl(cfg)}`);
  return rec;
}

export function prometheusDown(cfg: StackConfig): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, PROMETHEUS_PART);
}

export interface PrometheusTargetView {
  job: string;
  url: string;
  health: 'up' | 'down' | 'unknown';
  lastError?: string;
}

/** The targets Prometheus scrapes and how the last scrape went, or undefined when it does not answer. */
export async function prometheusTargets(cfg: StackConfig): Promise<PrometheusTargetView[] | undefined> {
  if (!isAlive(readState(cfg.dataDir)?.processes[PROMETHEUS_PART])) return undefined;
  const res = await httpRequest(`${prometheusUrl(cfg)}/api/v1/targets?state=active`, {
    timeoutMs: 2000,
  }).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  const body = JSON.parse(res.body) as {
    data: {
      activeTargets: {
        labels: Record<string, string>;
        scrapeUrl: string;
        health: string;
        lastError: string;
      }[];
    };
  };
  return body.data.activeTargets.map((t) => ({
    job: t.labels.job ?? '',
    url: t.scrapeUrl,
    health: t.health as PrometheusTargetView['health'],
    ...(t.lastError ? { lastError: t.lastError } : {}),
  }));
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** An instant PromQL query; a vector or scalar result as samples. Throws with Prometheus' own error. */
export async function promQuery(cfg: StackConfig, query: string): Promise<PromSample[]> {
  const res = await httpRequest(`${prometheusUrl(cfg)}/api/v1/query?query=${encodeURIComponent(query)}`, {
    timeoutMs: 10_000,
  });
  const body = JSON.parse(res.body) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: unknown };
  };
  if (body.status !== 'success') throw new Error(`PromQL ${query}: ${body.error ?? `HTTP ${res.status}`}`);
  const { resultType, result } = body.data!;
  if (resultType === 'scalar') return [{ metric: {}, value: Number((result as [number, string])[1]) }];
  if (resultType !== 'vector') throw new Error(`PromQL ${query}: a ${resultType}, not a vector`);
  return (result as { metric: Record<string, string>; value: [number, string] }[]).map((s) => ({
    metric: s.metric,
    value: Number(s.value[1]),
  }));
}

// ---------------------------------------------------------------- metrics target

export async function metricsTargetHealthy(cfg: StackConfig, timeoutMs = 1000): Promise<boolean> {
  const res = await httpRequest(`${metricsTargetUrl(cfg)}/healthz`, { timeoutMs }).catch(
    () => undefined,
  );
  return res?.status === 200;
}

export async function metricsTargetUp(cfg: StackConfig, log: (line: string) => void): Promise<ProcRecord> {
  const port = ports.metricsTarget(cfg.portBase);
  const dir = path.join(cfg.dataDir, 'metrics');
  mkdirSync(dir, { recursive: true });
  const args = [main, '--port', String(port), '--state', path.join(dir, 'traffic.json')];
  let existing = readState(cfg.dataDir)?.processes[METRICS_PART];
  if (
    existing &&
    isAlive(existing) &&
    JSON.stringify(existing.command) !== JSON.stringify([process.execPath, ...args])
  ) {
    await stopProcess(cfg.dataDir, cfg.portBase, METRICS_PART);
    existing = undefined;
  }
  if (existing && isAlive(existing)) {
    await waitFor(METRICS_PART, () => metricsTargetHealthy(cfg), { timeoutMs: 15_000, rec: existing });
    return existing;
  }
  await assertPortFree(port, METRICS_PART);
  const rec = startProcess(cfg.dataDir, cfg.portBase, {
    name: METRICS_PART,
    command: process.execPath,
    args,
    cwd: cfg.root,
  });
  await waitFor(METRICS_PART, () => metricsTargetHealthy(cfg), { timeoutMs: 30_000, rec, intervalMs: 100 });
  log(`metrics target: up at ${metricsTargetUrl(cfg)}/metrics`);
  return rec;
}

export function metricsTargetDown(cfg: StackConfig): Promise<boolean> {
  return stopProcess(cfg.dataDir, cfg.portBase, METRICS_PART);
}

async function targetCall<T>(cfg: StackConfig, method: string, apiPath: string, body?: unknown): Promise<T> {
  if (!isAlive(readState(cfg.dataDir)?.processes[METRICS_PART]))
    throw new Error(`the metrics target of ${cfg.dataDir} does not run: \`npm run stack -- up\` first`);
  const res = await httpRequest(`${metricsTargetUrl(cfg)}${apiPath}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMs: 5_000,
  });
  const parsed = JSON.parse(res.body) as T & { message?: string };
  if (res.status !== 200) throw new Error(`metrics target: ${parsed.message ?? `HTTP ${res.status}`}`);
  return parsed;
}

function checkCluster(cfg: StackConfig, cluster: string | undefined): void {
  if (cluster && !cfg.fleet.clusters.some((c) => c.name === cluster))
    throw new Error(`no cluster "${cluster}" (have ${cfg.fleet.clusters.map((c) => c.name).join(', ')})`);
}

export async function setTrafficOn(cfg: StackConfig, input: TrafficInput): Promise<Traffic[]> {
  const parsed = TrafficSchema.safeParse(input);
  if (!parsed.success) throw new Error(`bad traffic: ${issues(parsed.error)}`);
  checkCluster(cfg, parsed.data.cluster);
  return (await targetCall<{ traffic: Traffic[] }>(cfg, 'PUT', '/v1/traffic', parsed.data)).traffic;
}

export async function clearTrafficOn(
  cfg: StackConfig,
  filter: TrafficFilter,
): Promise<{ removed: number; traffic: Traffic[] }> {
  const parsed = TrafficFilterSchema.safeParse(filter);
  if (!parsed.success) throw new Error(`bad traffic filter: ${issues(parsed.error)}`);
  checkCluster(cfg, parsed.data.cluster);
  return targetCall(cfg, 'POST', '/v1/traffic/clear', parsed.data);
}

export async function listTrafficOn(cfg: StackConfig): Promise<Traffic[]> {
  return (await targetCall<{ traffic: Traffic[] }>(cfg, 'GET', '/v1/traffic')).traffic;
}
