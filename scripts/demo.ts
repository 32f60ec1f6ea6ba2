/**
 * `npm start`: the local stack, then Flotilla's worker and API as processes of
 * the stack (so `npm run stack -- down` stops them too), then one delivery of
 * demo/web to the three clusters in two waves, printed as it happens and read
 * back from each cluster at the end.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { createClusterClients } from '../activities/kubernetes/clients.ts';
import type { DeliveryStatus } from '../model/index.ts';
import { resolveConfig, stackInfoFile, up } from '../stack/index.ts';
import { isAlive, readState, startProcess, waitFor } from '../stack/process.ts';
import type { StackInfo } from '../stack/types.ts';
import { inventoryFromStack } from '../worker/inventory-from-stack.ts';

const root = path.resolve(import.meta.dirname, '..');
const say = (line: string) => console.log(line);
const ROLES = ['ci', 'release-manager', 'sre', 'viewer'] as const;

const cfg = resolveConfig({});
const info: StackInfo = await up({ log: say });
const stateDir = path.dirname(stackInfoFile(cfg.dataDir));
mkdirSync(stateDir, { recursive: true });

// The worker's inventory, from the stack.
const inventoryFile = path.join(stateDir, 'inventory.yaml');
const inventory = inventoryFromStack(info);
writeFileSync(inventoryFile, stringify(inventory), { mode: 0o600 });

// One bearer token per role, made once, readable by this user only.
const tokensFile = path.join(stateDir, 'api-tokens.json');
if (!existsSync(tokensFile)) {
  const tokens = Object.fromEntries(ROLES.map((role) => [randomBytes(24).toString('base64url'), { name: `demo-${role}`, role }]));
  writeFileSync(tokensFile, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
}
chmodSync(tokensFile, 0o600);
const byRole = Object.fromEntries(
  Object.entries(JSON.parse(readFileSync(tokensFile, 'utf8')) as Record<string, { role: string }>).map(([t, v]) => [v.role, t]),
);
const apiPort = cfg.portBase + 80;
const apiUrl = `http://127.0.0.1:${apiPort}`;
const infoFile = stackInfoFile(cfg.dataDir);
writeFileSync(infoFile, JSON.stringify({ ...info, api: { url: apiUrl, tokens: byRole } }, null, 2) + '\n', { mode: 0o600 });
chmodSync(infoFile, 0o600);

// Worker and API, supervised like the stack's own parts.
const env = {
  ...process.env,
  FLOTILLA_TEMPORAL_ADDRESS: info.temporal.address,
  FLOTILLA_TEMPORAL_NAMESPACE: info.temporal.namespace,
  FLOTILLA_INVENTORY: inventoryFile,
  FLOTILLA_API_TOKENS_FILE: tokensFile,
  FLOTILLA_API_PORT: String(apiPort),
  FLOTILLA_LOG_LEVEL: 'info',
};
const procs = readState(cfg.dataDir)?.processes ?? {};
for (const [name, entry] of [['flotilla-worker', 'worker/main.ts'], ['flotilla-api', 'api/main.ts']] as const) {
  if (isAlive(procs[name])) continue;
  procs[name] = startProcess(cfg.dataDir, cfg.portBase, { name, command: process.execPath, args: [path.join(root, entry)], cwd: root, env });
  say(`${name}: started (pid ${procs[name].pid}, log ${procs[name].log})`);
}
await waitFor('the API', async () => (await fetch(`${apiUrl}/readyz`)).ok, { timeoutMs: 60_000, rec: procs['flotilla-api']! });

const call = async (method: string, url: string, role: string, body?: unknown) => {
  const res = await fetch(`${apiUrl}${url}`, {
    method,
    headers: { Authorization: `Bearer ${byRole[role]}`, 'Content-Type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok && res.status !== 404) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return { status: res.status, json };
};

// The next demo tag after the one running now: v1 -> v2 -> v3 -> v1.
const central = info.registries.find((r) => r.region === 'central')!.host;
const current = await call('GET', '/v1/apps/web?namespace=demo', 'viewer');
const runningImage = current.status === 200 ? ((current.json.spec as { image?: string } | undefined)?.image ?? '') : '';
const tags = ['v1', 'v2', 'v3'];
const next = tags[(tags.indexOf(runningImage.split(':').at(-1) ?? '') + 1) % tags.length]!;
const request = {
  type: 'deploy',
  app: { name: 'web', namespace: 'demo', image: `${central}/demo/web:${next}`, replicas: 8, placement: { clusters: info.clusters.map((c) => c.name) } },
  waves: [[info.clusters[0]!.name], info.clusters.slice(1).map((c) => c.name)],
  onFailure: 'rollback',
};
say(`\nPOST ${apiUrl}/v1/deliveries  (${request.app.image}, ${request.app.replicas} replicas, waves ${JSON.stringify(request.waves)})`);
const started = await call('POST', '/v1/deliveries', 'ci', request);
const id = started.json.id as string;
say(`-> ${started.status} ${id}  (digests ${JSON.stringify(started.json.digests ?? {})})\n`);

const t0 = Date.now();
let last = '';
let status: DeliveryStatus;
for (;;) {
  status = (await call('GET', `/v1/deliveries/${id}`, 'viewer')).json as unknown as DeliveryStatus;
  // The wave's step too: each wave first replicates the image into its region's registry.
  const step = status.steps?.[status.currentStep] ?? '';
  const line = `${status.phase.padEnd(14)} wave ${status.currentWave + 1}/${status.waves.length || '?'} ${step.padEnd(9)}  ${Object.values(status.clusters)
    .map((c) => `${c.cluster} ${c.phase} ${c.readyReplicas}/${c.desiredReplicas}`)
    .join('  ')}`;
  if (line !== last) say(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  last = line;
  if (['Healthy', 'Degraded', 'Aborted', 'RolledBack', 'NeedsAttention'].includes(status.phase)) break;
  await new Promise((r) => setTimeout(r, 500));
}
say(`\n${status.phase}: ${status.message}\n\nRead back from each cluster:`);
for (const c of inventory.clusters) {
  const d = await createClusterClients(c).apps.readNamespacedDeployment({ name: 'web', namespace: 'demo' }).catch(() => undefined);
  say(`  ${c.name.padEnd(10)} ${d?.spec?.template.spec?.containers[0]?.image ?? '(none)'}  ${d?.status?.readyReplicas ?? 0}/${d?.spec?.replicas ?? 0} ready`);
}
say(`
Temporal UI     ${info.temporal.uiUrl}  (workflow ${id})
API             ${apiUrl}  (OpenAPI: ${apiUrl}/openapi.json; tokens per role in ${infoFile}, mode 0600)
Try             curl -H "Authorization: Bearer $(node -p 'require("./${path.relative(root, infoFile)}").api.tokens.viewer')" ${apiUrl}/v1/apps/web?namespace=demo
Again           npm start    (delivers the next demo tag)
Stop            npm run stack -- down`);
process.exit(status.phase === 'Healthy' ? 0 : 1);
