/**
 * The local stack's API (the CLI and vitest's global setup use it): `up`,
 * `down`, `status`, `fault`, `proxyRules`, and the StackInfo `up` writes. All state lives in
 * the data dir (`state.json`: pids, ports, faults), so any process can act on
 * a stack another process started.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StackClusterInfo, StackInfo, StackRegistryInfo } from './types.ts';
import type { StackConfig, StackOptions } from './config.ts';
import { ensureBinaries, ephemeralOverlap, resolveConfig, stackInfoFile } from './config.ts';
import type { ComponentStatus } from './cluster.ts';
import {
  clusterDown,
  clusterFaultDown,
  clusterFaultUp,
  clusterInfo,
  clusterStatus,
  clusterUp,
  NODE_MONITOR_GRACE_SECONDS,
  nodesNotReady,
  nodesReady,
} from './cluster.ts';
import { argoHealthzUrl } from './argo.ts';
import { httpRequest } from './net.ts';
import type { BehaviourInput } from './behaviours.ts';
import { clearBehaviourOn, readBehaviours, setBehaviourOn } from './behaviours.ts';
import type { BehaviourRule } from './puller/behaviours.ts';
import type { ProcRecord } from './process.ts';
import { isAlive, memoryOf, readState, stopProcess, updateState, withLock } from './process.ts';
import {
  pushDemoImages,
  registryDown,
  registryHealthy,
  registryInfo,
  registryPart,
  registryUp,
} from './registry.ts';
import {
  loadTemporalClient,
  TEMPORAL_PART,
  temporalDown,
  temporalHealthy,
  temporalInfo,
  temporalUp,
} from './temporal.ts';
import type { ProxyClusterView } from './proxy.ts';
import {
  PROXY_PART,
  proxyControlUrl,
  proxyDown,
  proxyHealthy,
  proxySetRules,
  proxyUp,
  proxyViews,
} from './proxy.ts';
import type { ProxyRule } from './proxy/rules.ts';
import { ProxyRulesSchema } from './proxy/rules.ts';
import type { PrometheusTargetView, PromSample, ScrapeTarget } from './prometheus.ts';
import {
  addScrapeTargetTo,
  clearTrafficOn,
  listTrafficOn,
  METRICS_PART,
  metricsTargetDown,
  metricsTargetHealthy,
  metricsTargetUp,
  metricsTargetUrl,
  PROMETHEUS_PART,
  prometheusDown,
  prometheusHealthy,
  prometheusTargets,
  prometheusUp,
  prometheusUrl,
  promQuery,
  readScrapeTargets,
  removeScrapeTargetFrom,
  setTrafficOn,
} from './prometheus.ts';
import type { Traffic, TrafficFilter, TrafficInput } from './metrics/traffic.ts';
import type { PullerClusterView } from './puller.ts';
import {
  PULLER_PART,
  pullerDown,
  pullerHealthy,
  pullerUrl,
  pullerUp,
  pullerViews,
  pullerWatching,
} from './puller.ts';

export type { StackInfo, StackClusterInfo, StackRegistryInfo } from './types.ts';
export type { StackOptions } from './config.ts';
export type { ProcRecord } from './process.ts';
export type { ProxyClusterView } from './proxy.ts';
export type { PullerClusterView } from './puller.ts';
export type { PrometheusTargetView, PromSample, ScrapeTarget } from './prometheus.ts';
export type { Traffic, TrafficFilter, TrafficInput } from './metrics/traffic.ts';
export type { BehaviourInput } from './behaviours.ts';
export type { ArgoInfo } from './argo.ts';
export { argoDown, argoUp } from './argo.ts';
export type { Behaviour, BehaviourRule } from './puller/behaviours.ts';
export type { ProxyRule, ActiveRule } from './proxy/rules.ts';
export { resolveConfig, stackInfoFile } from './config.ts';

export type Log = (line: string) => void;
const quiet: Log = () => {};

export function stackInfo(cfg: StackConfig): StackInfo {
  return {
    dataDir: cfg.dataDir,
    portBase: cfg.portBase,
    temporal: temporalInfo(cfg),
    clusters: cfg.fleet.clusters.map((c): StackClusterInfo => clusterInfo(cfg, c)),
    registries: cfg.fleet.registries.map((r): StackRegistryInfo => registryInfo(cfg, r)),
    prometheus: { url: prometheusUrl(cfg) },
    metricsTarget: { url: metricsTargetUrl(cfg) },
  };
}

/** Options that address the stack a StackInfo describes, from any process (tests fault it this way). */
export function stackOptions(info: StackInfo): StackOptions {
  return { dataDir: info.dataDir, ...(info.portBase ? { portBase: info.portBase } : {}) };
}

function checkPortBase(cfg: StackConfig): void {
  const state = readState(cfg.dataDir);
  if (!state || state.portBase === cfg.portBase) return;
  const live = Object.entries(state.processes).filter(([, rec]) => isAlive(rec));
  if (live.length) {
    throw new Error(
      `${cfg.dataDir} runs on port base ${state.portBase} (${live.map(([n]) => n).join(', ')}); asked for ${cfg.portBase}: run \`down\` first or use the same FLOTILLA_PORT_BASE`,
    );
  }
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    s.portBase = cfg.portBase;
  });
}

/** Refuses a fleet that would leave processes of the running one behind unseen (down first). */
function checkFleet(cfg: StackConfig): void {
  const state = readState(cfg.dataDir);
  const live = Object.entries(state?.processes ?? {}).filter(([, rec]) => isAlive(rec));
  const known = new Set([
    TEMPORAL_PART,
    PROXY_PART,
    PULLER_PART,
    PROMETHEUS_PART,
    METRICS_PART,
    ...cfg.fleet.registries.map((r) => registryPart(r.name)),
    ...cfg.fleet.clusters.map((c) => `cluster/${c.name}/`),
  ]);
  const stray = live
    .map(([name]) => name)
    .filter((n) => /^(registry|cluster)\//.test(n) && !known.has(n) && !known.has(n.replace(/[^/]+$/, '')));
  if (stray.length) {
    const parts = [...new Set(stray.map((n) => n.split('/').slice(0, 2).join('/')))];
    throw new Error(
      `${cfg.dataDir} runs ${parts.join(', ')}, which ${cfg.fleetFile} does not have: run \`down\` first${state?.fleetFile ? `, or give --fleet ${state.fleetFile}` : ''}`,
    );
  }
  updateState(cfg.dataDir, cfg.portBase, (s) => {
    s.fleetFile = cfg.fleetFile;
  });
}

/** Brings every part up (parts already healthy are left running) and writes the StackInfo file. */
export async function up(opts: StackOptions & { log?: Log } = {}): Promise<StackInfo> {
  const cfg = resolveConfig(opts);
  return withLock(cfg.dataDir, 'up', () => upLocked(cfg, opts.log ?? quiet));
}

async function upLocked(cfg: StackConfig, log: Log): Promise<StackInfo> {
  const t0 = Date.now();
  ensureBinaries(cfg.bins, log);
  checkPortBase(cfg);
  checkFleet(cfg);
  const overlap = ephemeralOverlap(cfg);
  if (overlap) log(`warning: ${overlap}`);
  log(`stack: ${cfg.dataDir} (port base ${cfg.portBase}, ${cfg.fleet.clusters.length} clusters)`);
  const central = cfg.fleet.registries.find((r) => r.name === 'central')!;
  const proxy = proxyUp(cfg, log);
  const tasks: [string, Promise<unknown>][] = [
    ['proxy', proxy],
    ['puller', pullerUp(cfg, log)],
    ['temporal', temporalUp(cfg, log)],
    ['prometheus', prometheusUp(cfg, log)],
    ['metrics target', metricsTargetUp(cfg, log)],
    ...cfg.fleet.registries.map((r): [string, Promise<unknown>] => [
      `registry ${r.name}`,
      registryUp(cfg, r, log).then(() =>
        r === central ? pushDemoImages(cfg, registryInfo(cfg, r).host, log) : undefined,
      ),
    ]),
    ...cfg.fleet.clusters.map((c): [string, Promise<unknown>] => [
      `cluster ${c.name}`,
      clusterUp(cfg, c, log, proxy),
    ]),
  ];
  const results = await Promise.allSettled(tasks.map(([, p]) => p));
  const failed = results.flatMap((r, i) =>
    r.status === 'rejected' ? [`${tasks[i]![0]}: ${(r.reason as Error)?.message ?? r.reason}`] : [],
  );
  if (failed.length)
    throw new Error(
      `stack up failed (run \`npm run stack -- status\`, logs in ${path.join(cfg.dataDir, 'logs')}):\n${failed.join('\n')}`,
    );
  // `up` ends every fault: the proxy's rules too.
  await Promise.all(cfg.fleet.clusters.map((c) => proxySetRules(cfg, c.name, [])));
  // Pods created right after up get their images checked at once.
  await pullerWatching(
    cfg,
    cfg.fleet.clusters.map((c) => c.name),
  );
  const file = stackInfoFile(cfg.dataDir);
  const info = writeStackInfo(file, stackInfo(cfg), log);
  log(`stack: up in ${((Date.now() - t0) / 1000).toFixed(1)}s; wrote ${file}`);
  return info;
}

/**
 * Writes the StackInfo file, keeping what others added to it (`api` from `npm start`,
 * anything else not the stack's own): the stack's fields are replaced, the rest kept.
 * Mode 0600: it may hold the API's tokens.
 */
function writeStackInfo(file: string, own: StackInfo, log: Log): StackInfo {
  let previous: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
        previous = parsed as Record<string, unknown>;
      else log(`warning: ${file} did not hold a JSON object; rewritten`);
    } catch (err) {
      log(`warning: ${file} was not valid JSON (${(err as Error).message}); rewritten`);
    }
  }
  const info = { ...previous, ...own } as StackInfo;
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  chmodSync(`${file}.tmp`, 0o600);
  renameSync(`${file}.tmp`, file);
  return info;
}

/** Stops every process the stack started (SIGTERM, SIGKILL after a grace). Keeps data unless `purge`. */
export async function down(opts: StackOptions & { log?: Log; purge?: boolean } = {}): Promise<void> {
  const cfg = resolveConfig(opts);
  await withLock(cfg.dataDir, 'down', () => downLocked(cfg, opts.log ?? quiet));
  if (opts.purge) {
    rmSync(cfg.dataDir, { recursive: true, force: true });
    rmSync(stackInfoFile(cfg.dataDir), { force: true });
    opts.log?.(`stack: removed ${cfg.dataDir}`);
  }
}

async function downLocked(cfg: StackConfig, log: Log): Promise<void> {
  const t0 = Date.now();
  if (readState(cfg.dataDir)) {
    // First: clients see connections refused, not apiservers dying mid-answer; the
    // puller does not write half a pod status.
    await Promise.all([proxyDown(cfg), pullerDown(cfg)]);
    await Promise.all([
      temporalDown(cfg),
      prometheusDown(cfg),
      metricsTargetDown(cfg),
      ...cfg.fleet.registries.map((r) => registryDown(cfg, r.name)),
      ...cfg.fleet.clusters.map((c) => clusterDown(cfg, c)),
    ]);
    // Anything else recorded (parts of an earlier fleet file, say).
    const rest = Object.keys(readState(cfg.dataDir)?.processes ?? {});
    await Promise.all(rest.map((name) => stopProcess(cfg.dataDir, cfg.portBase, name)));
    updateState(cfg.dataDir, cfg.portBase, (s) => {
      s.faults = {};
    });
    log(`stack: stopped in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  } else {
    log('stack: nothing recorded as running');
  }
}

export interface PartStatus {
  part: string;
  healthy: boolean;
  fault?: string;
  endpoint: string;
  detail?: string;
  processes: ComponentStatus[];
}

export interface StackStatus {
  dataDir: string;
  portBase: number;
  healthy: boolean;
  parts: PartStatus[];
  totalRssBytes: number;
  totalPssBytes: number;
}

/**
 * How long `status` lets each part take to answer. Polls during `up` keep 1 s; a status taken while the
 * machine is saturated (two cores, several stacks starting) must not call a slow part unhealthy: measured
 * in CI, every probe of a healthy six-cluster stack once missed its 1 s.
 */
const STATUS_PROBE_MS = 5000;

export async function status(opts: StackOptions = {}): Promise<StackStatus> {
  const cfg = resolveConfig(opts);
  const state = readState(cfg.dataDir);
  const single = (part: string, healthy: boolean): ComponentStatus => {
    const rec = state?.processes[part];
    const alive = isAlive(rec);
    return {
      part,
      ...(alive ? { pid: rec!.pid } : {}),
      alive,
      healthy: healthy && alive,
      ...memoryOf(rec),
    };
  };
  const temporal = temporalInfo(cfg);
  await loadTemporalClient(); // before the checks below start their 1 s timeouts
  const [views, pulls, targets] = await Promise.all([
    proxyViews(cfg),
    pullerViews(cfg),
    prometheusTargets(cfg),
  ]);
  const parts: PartStatus[] = await Promise.all([
    (async (): Promise<PartStatus> => {
      const healthy = isAlive(state?.processes[PROXY_PART]) && (await proxyHealthy(cfg, STATUS_PROBE_MS));
      return {
        part: PROXY_PART,
        healthy,
        endpoint: `${proxyControlUrl(cfg)} (control)`,
        detail: `${views?.filter((v) => v.listening).length ?? 0}/${cfg.fleet.clusters.length} listening`,
        processes: [single(PROXY_PART, healthy)],
      };
    })(),
    (async (): Promise<PartStatus> => {
      const healthy = isAlive(state?.processes[PULLER_PART]) && (await pullerHealthy(cfg, STATUS_PROBE_MS));
      const waiting = pulls?.reduce((n, v) => n + v.waiting.length, 0) ?? 0;
      return {
        part: PULLER_PART,
        healthy,
        endpoint: `${pullerUrl(cfg)}/v1/state`,
        detail: `${pulls?.filter((v) => v.connected).length ?? 0}/${cfg.fleet.clusters.length} watching${waiting ? `, ${waiting} pod(s) cannot pull` : ''}`,
        processes: [single(PULLER_PART, healthy)],
      };
    })(),
    (async (): Promise<PartStatus> => {
      const healthy = isAlive(state?.processes[TEMPORAL_PART]) && (await temporalHealthy(cfg));
      return {
        part: TEMPORAL_PART,
        healthy,
        endpoint: `${temporal.address} (UI ${temporal.uiUrl})`,
        processes: [single(TEMPORAL_PART, healthy)],
      };
    })(),
    (async (): Promise<PartStatus> => {
      const healthy = isAlive(state?.processes[PROMETHEUS_PART]) && (await prometheusHealthy(cfg, STATUS_PROBE_MS));
      const down = targets?.filter((t) => t.health !== 'up') ?? [];
      return {
        part: PROMETHEUS_PART,
        healthy,
        endpoint: prometheusUrl(cfg),
        detail: `${(targets?.length ?? 0) - down.length}/${targets?.length ?? 0} targets up${down.length ? ` (not: ${down.map((t) => t.job).join(', ')})` : ''}`,
        processes: [single(PROMETHEUS_PART, healthy)],
      };
    })(),
    (async (): Promise<PartStatus> => {
      const healthy = isAlive(state?.processes[METRICS_PART]) && (await metricsTargetHealthy(cfg, STATUS_PROBE_MS));
      const traffic = healthy ? await listTrafficOn(cfg).catch(() => undefined) : undefined;
      return {
        part: METRICS_PART,
        healthy,
        endpoint: `${metricsTargetUrl(cfg)}/metrics`,
        ...(traffic ? { detail: `${traffic.length} traffic entr${traffic.length === 1 ? 'y' : 'ies'}` } : {}),
        processes: [single(METRICS_PART, healthy)],
      };
    })(),
    ...cfg.fleet.registries.map(async (r): Promise<PartStatus> => {
      const info = registryInfo(cfg, r);
      const part = registryPart(r.name);
      const healthy = isAlive(state?.processes[part]) && (await registryHealthy(info.host, STATUS_PROBE_MS));
      const fault = state?.faults[part];
      return {
        part,
        healthy,
        ...(fault ? { fault } : {}),
        endpoint: info.url,
        processes: [single(part, healthy)],
      };
    }),
    // Argo Rollouts controllers started by argoUp (stack/argo.ts), if any.
    ...Object.keys(state?.processes ?? {})
      .filter((name) => name.startsWith('argo/') && cfg.fleet.clusters.some((c) => `argo/${c.name}` === name))
      .map(async (name): Promise<PartStatus> => {
        const url = argoHealthzUrl(cfg, name.slice('argo/'.length));
        const healthy =
          isAlive(state?.processes[name]) &&
          (await httpRequest(url, { timeoutMs: STATUS_PROBE_MS }).then(
            (r) => r.status === 200,
            () => false,
          ));
        return { part: name, healthy, endpoint: url, processes: [single(name, healthy)] };
      }),
    ...cfg.fleet.clusters.map(async (c): Promise<PartStatus> => {
      const s = await clusterStatus(
        cfg,
        c,
        views?.find((v) => v.name === c.name),
      );
      const detail = `${s.readyNodes}/${c.nodes} nodes ready${s.proxyListening ? '' : ', proxy not listening'}`;
      return {
        part: `cluster/${c.name}`,
        healthy: s.healthy,
        ...(s.fault ? { fault: s.fault } : {}),
        endpoint: clusterInfo(cfg, c).apiserverUrl,
        detail,
        processes: s.components,
      };
    }),
  ]);
  const procs = parts.flatMap((p) => p.processes);
  const totalRssBytes = procs.reduce((sum, p) => sum + p.rssBytes, 0);
  const totalPssBytes = procs.reduce((sum, p) => sum + p.pssBytes, 0);
  return {
    dataDir: cfg.dataDir,
    portBase: cfg.portBase,
    healthy: parts.every((p) => p.healthy),
    parts,
    totalRssBytes,
    totalPssBytes,
  };
}

export const FAULTS = [
  'cluster-down',
  'cluster-up',
  'cluster-hang',
  'cluster-5xx',
  'cluster-heal',
  'registry-down',
  'registry-up',
  'nodes-notready',
  'nodes-ready',
] as const;
export type Fault = (typeof FAULTS)[number];

/**
 * Simulated outages: stop/start one cluster's apiserver or one registry (data is
 * kept); make every request to a cluster hang or answer 503 at its proxy, or heal
 * it (clear its proxy rules); stop or resume the heartbeats of a cluster's nodes
 * (nodes-notready: NotReady after the node-lifecycle controller's 20 s grace, the API
 * still serving; nodes-ready waits until they are Ready again, with their pods).
 */
export async function fault(
  kind: Fault,
  name: string,
  opts: StackOptions & { log?: Log } = {},
): Promise<void> {
  const cfg = resolveConfig(opts);
  await withLock(cfg.dataDir, `fault ${kind} ${name}`, () => faultLocked(cfg, kind, name, opts.log ?? quiet));
}

async function faultLocked(cfg: StackConfig, kind: Fault, name: string, log: Log): Promise<void> {
  if (kind === 'nodes-notready' || kind === 'nodes-ready') {
    const c = cfg.fleet.clusters.find((x) => x.name === name);
    if (!c)
      throw new Error(`no cluster "${name}" (have ${cfg.fleet.clusters.map((x) => x.name).join(', ')})`);
    if (kind === 'nodes-notready') {
      await nodesNotReady(cfg, c);
      log(
        `cluster ${name}: node heartbeats stopped; the nodes turn NotReady within ~${NODE_MONITOR_GRACE_SECONDS} s (the API keeps serving)`,
      );
    } else {
      const t0 = Date.now();
      const r = await nodesReady(cfg, c);
      log(
        `cluster ${name}: nodes Ready again (${((Date.now() - t0) / 1000).toFixed(1)}s; ${r.pods} pod(s) Ready again)`,
      );
    }
    return;
  }
  if (kind.startsWith('cluster-')) {
    const c = cfg.fleet.clusters.find((x) => x.name === name);
    if (!c)
      throw new Error(`no cluster "${name}" (have ${cfg.fleet.clusters.map((x) => x.name).join(', ')})`);
    if (kind === 'cluster-hang' || kind === 'cluster-5xx' || kind === 'cluster-heal') {
      const rules: ProxyRule[] =
        kind === 'cluster-hang'
          ? [{ action: 'hang' }]
          : kind === 'cluster-5xx'
            ? [{ action: 'error', status: 503 }]
            : [];
      const view = await proxySetRules(cfg, c.name, rules);
      log(`cluster ${name}: proxy ${view.faulty ? view.describe : 'healed (no rules)'}`);
      return;
    }
    if (kind === 'cluster-down') {
      await clusterFaultDown(cfg, c);
      log(
        `cluster ${name}: API down (apiserver, controllers, scheduler and kwok stopped; etcd keeps the data)`,
      );
    } else {
      await clusterFaultUp(cfg, c, log, proxyUp(cfg, log));
      await pullerUp(cfg, log); // (a no-op when it runs)
      await pullerWatching(cfg, [c.name]);
    }
    return;
  }
  const r = cfg.fleet.registries.find((x) => x.name === name);
  if (!r)
    throw new Error(`no registry "${name}" (have ${cfg.fleet.registries.map((x) => x.name).join(', ')})`);
  const part = registryPart(name);
  if (kind === 'registry-down') {
    await registryDown(cfg, name);
    updateState(cfg.dataDir, cfg.portBase, (s) => {
      s.faults[part] = 'down';
    });
    log(`${part}: stopped (storage kept)`);
  } else {
    await registryUp(cfg, r, log);
    updateState(cfg.dataDir, cfg.portBase, (s) => {
      delete s.faults[part];
    });
  }
}

/**
 * Replaces the fault rules of one cluster's API-server proxy (an empty list heals
 * it) and returns what the proxy now holds. Rules: stack/proxy/rules.ts. Replacing
 * or clearing rules closes the connections `hang` and `drop-reply` held open.
 *
 *   await proxyRules('beijing', [{ action: 'drop-reply', method: 'PATCH', count: 1 }], stackOptions(stack));
 */
export async function proxyRules(
  cluster: string,
  rules: ProxyRule[],
  opts: StackOptions = {},
): Promise<ProxyClusterView> {
  const cfg = resolveConfig(opts);
  if (!cfg.fleet.clusters.some((c) => c.name === cluster))
    throw new Error(`no cluster "${cluster}" (have ${cfg.fleet.clusters.map((x) => x.name).join(', ')})`);
  const parsed = ProxyRulesSchema.safeParse({ rules });
  if (!parsed.success)
    throw new Error(
      `bad proxy rules: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return proxySetRules(cfg, cluster, parsed.data.rules);
}

/**
 * Sets what the metrics target serves for one application, version and cluster:
 * `http_requests_total{app,version,cluster,code="200"|"500"}` grow by `rps` a second
 * together, `errorRate` of them as 500 (default 0). Setting an entry again changes its
 * rates and keeps its counters. Returns every entry.
 *
 *   await setTraffic({ app: 'shop/web', version: 'v2', cluster: 'beijing', rps: 50, errorRate: 0.2 }, stackOptions(stack));
 */
export async function setTraffic(traffic: TrafficInput, opts: StackOptions = {}): Promise<Traffic[]> {
  return setTrafficOn(resolveConfig(opts), traffic);
}

/** Removes the entries matching every field given (`{}`: all) and their series; returns how many and what is left. */
export async function clearTraffic(
  filter: TrafficFilter = {},
  opts: StackOptions = {},
): Promise<{ removed: number; traffic: Traffic[] }> {
  return clearTrafficOn(resolveConfig(opts), filter);
}

export async function listTraffic(opts: StackOptions = {}): Promise<Traffic[]> {
  return listTrafficOn(resolveConfig(opts));
}

/**
 * Has the stack's Prometheus scrape another target (the API's or the worker's
 * /metrics, say) from now on: written to `<data>/prometheus/scrape-targets.json`
 * (file_sd), picked up within seconds without a restart, kept across `down`/`up`
 * (not `--purge`). A target with the same job and URL is replaced. Returns them all.
 *
 *   await addScrapeTarget({ job: 'flotilla-api', url: 'http://127.0.0.1:27080/metrics' }, opts);
 */
export function addScrapeTarget(
  target: { job: string; url: string; labels?: Record<string, string> },
  opts: StackOptions = {},
): ScrapeTarget[] {
  return addScrapeTargetTo(resolveConfig(opts), { labels: {}, ...target });
}

/** Stops scraping a job (only its target at `url` when given); returns what is left. */
export function removeScrapeTarget(job: string, url?: string, opts: StackOptions = {}): ScrapeTarget[] {
  return removeScrapeTargetFrom(resolveConfig(opts), job, url);
}

/** The extra scrape targets (not the stack's own). */
export function scrapeTargets(opts: StackOptions = {}): ScrapeTarget[] {
  return readScrapeTargets(resolveConfig(opts));
}

/** Every target Prometheus scrapes (its own and the extra ones) with the last scrape's health; [] when it does not run. */
export async function prometheusState(opts: StackOptions = {}): Promise<PrometheusTargetView[]> {
  return (await prometheusTargets(resolveConfig(opts))) ?? [];
}

/** An instant PromQL query against the stack's Prometheus: `[{metric, value}]`. */
export async function prometheusQuery(query: string, opts: StackOptions = {}): Promise<PromSample[]> {
  return promQuery(resolveConfig(opts), query);
}

/**
 * Makes pods of an image (any registry's copy: matched by repository and digest; a tag is
 * resolved now) or carrying a label behave: `unready` (never Ready), `crashloop`,
 * `unready-after=30s` (Ready, then not), `ready` (as normal: an exception to a broader
 * rule). The newest matching rule wins, then the pod's own `flotilla.dev/simulate`. Applies
 * to pods that start from now on; kept across down/up. Returns the table.
 *
 *   await setBehaviour({ image: `${central}/demo/web:v2`, behaviour: 'unready-after=30s' }, stackOptions(stack));
 *   await setBehaviour({ label: 'track=canary', behaviour: 'crashloop' }, stackOptions(stack));
 */
export async function setBehaviour(input: BehaviourInput, opts: StackOptions = {}): Promise<BehaviourRule[]> {
  return setBehaviourOn(resolveConfig(opts), input);
}

/** Removes the rule of that image or label (as given when set); `{}` removes every rule. */
export async function clearBehaviour(
  which: { image?: string; label?: string } = {},
  opts: StackOptions = {},
): Promise<{ removed: number; rules: BehaviourRule[] }> {
  return clearBehaviourOn(resolveConfig(opts), which);
}

export function listBehaviours(opts: StackOptions = {}): BehaviourRule[] {
  return readBehaviours(resolveConfig(opts));
}

/** What the image puller reports for each cluster (pods it cannot pull yet, and why), or [] when it does not run. */
export async function pullerState(opts: StackOptions = {}): Promise<PullerClusterView[]> {
  return (await pullerViews(resolveConfig(opts))) ?? [];
}

/** What the proxy holds for each cluster (rules, counters, listening), or [] when it does not run. */
export async function proxyState(opts: StackOptions = {}): Promise<ProxyClusterView[]> {
  return (await proxyViews(resolveConfig(opts))) ?? [];
}

/** The processes the stack has recorded as started (`down` forgets them once stopped). */
export function recordedProcesses(opts: StackOptions = {}): Record<string, ProcRecord> {
  return readState(resolveConfig(opts).dataDir)?.processes ?? {};
}
export { isAlive } from './process.ts';
