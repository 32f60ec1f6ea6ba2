/**
 * What the API-server proxy adds to a request: the median (and p90) of N GETs
 * through the handed-out URL vs straight to the apiserver, alternating so load
 * from elsewhere hits both alike. Two ways: on a kept-alive connection, and on a
 * new TLS connection per request. Needs a running stack (`npm run stack -- up`).
 *
 *   bash scripts/node.sh stack/bench/proxy-latency.ts [--cluster beijing] [--n 200]
 *   (FLOTILLA_STACK_DIR / FLOTILLA_PORT_BASE choose the stack, as for the CLI)
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { resolveConfig, stackInfoFile } from '../index.ts';
import type { StackInfo } from '../types.ts';

const { values } = parseArgs({
  options: { cluster: { type: 'string' }, n: { type: 'string', default: '200' } },
});
const n = Number(values.n);
const cfg = resolveConfig({});
const info = JSON.parse(readFileSync(stackInfoFile(cfg.dataDir), 'utf8')) as StackInfo;
const c = values.cluster ? info.clusters.find((x) => x.name === values.cluster) : info.clusters[0];
if (!c) throw new Error(`no cluster ${values.cluster}`);

interface Kubeconfig {
  clusters: { cluster: { 'certificate-authority-data': string } }[];
  users: { user: { token: string } }[];
}
const kc = parseYaml(readFileSync(c.kubeconfig, 'utf8')) as Kubeconfig;
const ca = Buffer.from(kc.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString();
const token = kc.users[0]!.user.token;

function get(url: string, agent: https.Agent | false): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${url}/api/v1/namespaces/default`,
      { ca, agent, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(performance.now() - t0)
            : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
  });
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;

async function measure(label: string, fresh: boolean): Promise<void> {
  const agents = fresh
    ? undefined
    : { proxy: new https.Agent({ keepAlive: true, ca }), direct: new https.Agent({ keepAlive: true, ca }) };
  const times = { proxy: [] as number[], direct: [] as number[] };
  for (let i = 0; i < n + 20; i++) {
    for (const which of i % 2 ? (['proxy', 'direct'] as const) : (['direct', 'proxy'] as const)) {
      const t = await get(which === 'proxy' ? c!.apiserverUrl : c!.directUrl, agents?.[which] ?? false);
      if (i >= 20) times[which].push(t); // the first 20 warm up
    }
  }
  agents?.proxy.destroy();
  agents?.direct.destroy();
  const f = (x: number) => `${x.toFixed(2)} ms`;
  console.log(
    `${label.padEnd(22)} direct median ${f(q(times.direct, 0.5))} p90 ${f(q(times.direct, 0.9))} | proxy median ${f(q(times.proxy, 0.5))} p90 ${f(q(times.proxy, 0.9))} | added (median) ${f(q(times.proxy, 0.5) - q(times.direct, 0.5))}`,
  );
}

console.log(`${c.name}: ${n} GET /api/v1/namespaces/default each way (${c.apiserverUrl} vs ${c.directUrl})`);
await measure('kept-alive connection', false);
await measure('new connection each', true);
