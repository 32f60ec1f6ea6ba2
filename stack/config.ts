/**
 * The local stack's configuration: the fleet file (validated with zod), where
 * data lives, which ports every part listens on, and which binaries run them.
 *
 * Every port derives from one base (FLOTILLA_PORT_BASE, default 27000) so two
 * stacks (dev and test) run side by side:
 *   base+0..3     Temporal gRPC, UI, HTTP API, metrics
 *   base+4        the API-server proxy's control endpoint
 *   base+5        the image puller's state endpoint
 *   base+6, +7    Prometheus, the metrics target
 *   base+10+i     registry i (in fleet order; `central` first by default)
 *   base+100+10*i cluster i: +0 its API as handed out (the proxy), +1 etcd client, +2 etcd peer,
 *                 +3 kwok, +4 kube-apiserver itself (its own components use it directly)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isAlive, readState } from './process.ts';

export const repoRoot = path.resolve(import.meta.dirname, '..');
export const defaultFleetFile = path.join(repoRoot, 'stack', 'fleet.yaml');
export const defaultDataDir = path.join(repoRoot, '.flotilla', 'stack');
export const defaultPortBase = 27000;

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'a DNS label (lowercase letters, digits, -)');

const FleetClusterSchema = z.object({
  name: dnsLabel,
  region: z.string().min(1),
  zone: z.string().min(1).optional(),
  provider: z.string().min(1),
  labels: z.record(z.string(), z.string()).default({}),
  capacity: z.number().positive().default(1),
  nodes: z.number().int().min(1).max(50).default(3),
  /** Name of the registry (in `registries`) this cluster pulls from. */
  mirror: z.string().min(1).optional(),
});

const FleetRegistrySchema = z.object({ name: dnsLabel, region: z.string().min(1) });

const ImagesSchema = z.object({
  repository: z.string().regex(/^[a-z0-9]+([._/-][a-z0-9]+)*$/),
  tags: z.array(z.string().min(1)).min(1),
  multiArchTag: z.string().min(1).optional(),
  layers: z.number().int().min(1).max(20).default(3),
  layerSizeKiB: z
    .number()
    .int()
    .min(1)
    .max(512 * 1024)
    .default(64),
});

export const FleetSchema = z
  .object({
    clusters: z.array(FleetClusterSchema).min(1).max(9),
    registries: z.array(FleetRegistrySchema).min(1).max(80),
    images: ImagesSchema,
  })
  .superRefine((fleet, ctx) => {
    const unique = (kind: 'clusters' | 'registries') => {
      const seen = new Set<string>();
      fleet[kind].forEach((x, i) => {
        if (seen.has(x.name))
          ctx.addIssue({ code: 'custom', path: [kind, i, 'name'], message: `duplicate name "${x.name}"` });
        seen.add(x.name);
      });
      return seen;
    };
    unique('clusters');
    const registries = unique('registries');
    if (!registries.has('central'))
      ctx.addIssue({
        code: 'custom',
        path: ['registries'],
        message: 'a registry named "central" is required',
      });
    fleet.clusters.forEach((c, i) => {
      if (c.mirror && !registries.has(c.mirror)) {
        ctx.addIssue({
          code: 'custom',
          path: ['clusters', i, 'mirror'],
          message: `no registry named "${c.mirror}"`,
        });
      }
    });
  });
export type Fleet = z.infer<typeof FleetSchema>;
export type FleetCluster = Fleet['clusters'][number];
export type FleetRegistry = Fleet['registries'][number];
export type ImagesConfig = Fleet['images'];

export function loadFleet(file: string = defaultFleetFile): Fleet {
  const parsed = FleetSchema.safeParse(parseYaml(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('\n');
    throw new Error(`invalid fleet file ${file}:\n${issues}`);
  }
  return parsed.data;
}

export interface Binaries {
  temporal: string;
  kube: string;
  kwok: string;
}

export interface StackConfig {
  root: string;
  dataDir: string;
  portBase: number;
  fleet: Fleet;
  fleetFile: string;
  bins: Binaries;
}

export interface StackOptions {
  dataDir?: string;
  portBase?: number;
  fleetFile?: string;
}

/**
 * Resolves options, then env (FLOTILLA_STACK_DIR, FLOTILLA_PORT_BASE), then defaults;
 * the fleet file: the option, else the one the data dir was last brought up with, else stack/fleet.yaml.
 * The port base of a data dir whose processes run is the one they run on (so
 * `status`, `fault` and `down` from any shell reach them); of a stopped one, the
 * env's, else the one last recorded, else 27000.
 */
export function resolveConfig(opts: StackOptions = {}): StackConfig {
  const dataDir = path.resolve(opts.dataDir ?? process.env.FLOTILLA_STACK_DIR ?? defaultDataDir);
  const envBase = process.env.FLOTILLA_PORT_BASE ? Number(process.env.FLOTILLA_PORT_BASE) : undefined;
  const state = readState(dataDir);
  const running =
    state && Object.values(state.processes).some((rec) => isAlive(rec)) ? state.portBase : undefined;
  const portBase = opts.portBase ?? running ?? envBase ?? state?.portBase ?? defaultPortBase;
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase > 65000)
    throw new Error(`bad port base ${portBase}`);
  // The fleet a data dir was brought up with stays its fleet (status, fault, down) until another is given.
  const recorded = state?.fleetFile && existsSync(state.fleetFile) ? state.fleetFile : undefined;
  const fleetFile = path.resolve(opts.fleetFile ?? recorded ?? defaultFleetFile);
  return { root: repoRoot, dataDir, portBase, fleet: loadFleet(fleetFile), fleetFile, bins: binaryPaths() };
}

/** Where `up` writes the StackInfo: `.flotilla/stack.json` for the default data dir, else inside the data dir. */
export function stackInfoFile(dataDir: string): string {
  return path.resolve(dataDir) === defaultDataDir
    ? path.join(repoRoot, '.flotilla', 'stack.json')
    : path.join(dataDir, 'stack.json');
}

export const ports = {
  temporal: (base: number) => ({ grpc: base, ui: base + 1, http: base + 2, metrics: base + 3 }),
  proxyControl: (base: number) => base + 4,
  puller: (base: number) => base + 5,
  prometheus: (base: number) => base + 6,
  metricsTarget: (base: number) => base + 7,
  registry: (base: number, index: number) => base + 10 + index,
  cluster: (base: number, index: number) => {
    const p = base + 100 + 10 * index;
    return { proxy: p, etcdClient: p + 1, etcdPeer: p + 2, kwok: p + 3, apiserver: p + 4 };
  },
};

/** The last port the stack uses. */
export const lastPort = (cfg: StackConfig) =>
  ports.cluster(cfg.portBase, cfg.fleet.clusters.length - 1).apiserver;

/**
 * A warning when the stack's ports fall in the kernel's ephemeral range: outgoing
 * connections (the apiservers' to etcd hold dozens) take source ports there, and a
 * part that starts later then fails to bind now and then.
 */
export function ephemeralOverlap(cfg: StackConfig): string | undefined {
  let lo = 32768;
  let hi = 60999;
  try {
    [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number) as [number, number];
  } catch {
    /* not Linux: assume the usual range */
  }
  const last = lastPort(cfg);
  if (cfg.portBase > hi || last < lo) return undefined;
  return `ports ${cfg.portBase}-${last} overlap the ephemeral range ${lo}-${hi}: binds may fail at random; pick a base below ${lo - (last - cfg.portBase)}`;
}

let cachedBins: Binaries | undefined;
/** The binary paths scripts/env.sh exports (asked from env.sh itself when not in the environment). */
export function binaryPaths(): Binaries {
  if (cachedBins) return cachedBins;
  let { TEMPORAL_BIN: temporal, KUBE_BIN: kube, KWOK_BIN: kwok } = process.env;
  if (!temporal || !kube || !kwok) {
    const out = execFileSync(
      'bash',
      ['-c', 'source scripts/env.sh && printf "%s\\n" "$TEMPORAL_BIN" "$KUBE_BIN" "$KWOK_BIN"'],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    [temporal, kube, kwok] = out.trim().split('\n');
  }
  cachedBins = { temporal: temporal!, kube: kube!, kwok: kwok! };
  return cachedBins;
}

/** Runs scripts/build-binaries.sh when a binary is missing (it builds only what is missing). */
export function ensureBinaries(bins: Binaries, log: (line: string) => void): void {
  const missing = Object.entries(bins).filter(([, p]) => !existsSync(p));
  if (missing.length === 0) return;
  log(`binaries missing (${missing.map(([n]) => n).join(', ')}): running scripts/build-binaries.sh`);
  execFileSync('bash', ['scripts/build-binaries.sh'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const still = Object.entries(bins).filter(([, p]) => !existsSync(p));
  if (still.length) throw new Error(`still missing after build: ${still.map(([, p]) => p).join(', ')}`);
}
