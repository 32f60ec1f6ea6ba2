/**
 * The metrics target, one process of the local stack: made-up HTTP traffic per
 * application, version and cluster, served as Prometheus counters for the
 * stack's Prometheus to scrape (progressive delivery's analysis queries them).
 *
 *   node stack/metrics/main.ts --port <port> --state <data>/metrics/traffic.json
 *
 *   http_requests_total{app="shop/web",version="v2",cluster="beijing",code="200"}
 *   http_requests_total{app="shop/web",version="v2",cluster="beijing",code="500"}
 *
 * Each entry grows its two counters at the set rate (rps x (1 - errorRate) for 200,
 * rps x errorRate for 500), by the time that really passed, four times a second,
 * so `rate(http_requests_total[30s])` gives back the rps that was set. Both codes
 * exist from the start (at 0), so an error ratio reads 0, not "no data". Changing
 * an entry keeps its counters (the rate changes from then on); clearing one
 * removes its series (Prometheus marks them stale).
 *
 * GET /metrics, /healthz; GET /v1/traffic; PUT /v1/traffic {app, version, cluster,
 * rps, errorRate}; POST /v1/traffic/clear {app?, version?, cluster?}. Bad input:
 * 400 with the field and the reason. The table is saved to the state file on
 * every change and read back on start (counters start again from 0: a reset,
 * which rate() handles).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Counter, Registry } from 'prom-client';
import { z } from 'zod';
import type { Traffic, TrafficFilter } from './traffic.ts';
import { issues, matches, TrafficFilterSchema, TrafficSchema, trafficKey } from './traffic.ts';

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);
const TICK_MS = 250;
const CODES = [
  ['200', (t: Traffic) => t.rps * (1 - t.errorRate)],
  ['500', (t: Traffic) => t.rps * t.errorRate],
] as const;

interface Entry {
  traffic: Traffic;
  /** Exact (fractional) requests so far per code; the counters show the whole part. */
  exact: Record<string, number>;
  shown: Record<string, number>;
}

class Target {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'http_requests_total',
    help: 'Requests served, by application, version, cluster and status code (made up by the stack).',
    labelNames: ['app', 'version', 'cluster', 'code'] as const,
    registers: [this.registry],
  });
  private readonly entries = new Map<string, Entry>();
  private last = performance.now();
  private readonly stateFile: string;

  constructor(stateFile: string) {
    this.stateFile = stateFile;
    if (existsSync(stateFile)) {
      const saved = z.array(TrafficSchema).safeParse(JSON.parse(readFileSync(stateFile, 'utf8')));
      if (saved.success) for (const t of saved.data) this.set(t, false);
      else log(`ignoring ${stateFile}: ${issues(saved.error)}`);
    }
  }

  list(): Traffic[] {
    return [...this.entries.values()].map((e) => e.traffic);
  }

  set(t: Traffic, save = true): void {
    this.tick();
    const key = trafficKey(t);
    const entry = this.entries.get(key);
    if (entry) entry.traffic = t;
    else {
      this.entries.set(key, { traffic: t, exact: { '200': 0, '500': 0 }, shown: { '200': 0, '500': 0 } });
      for (const [code] of CODES) this.requests.inc(this.labels(t, code), 0);
    }
    if (save) this.save();
  }

  clear(f: TrafficFilter): number {
    this.tick();
    let removed = 0;
    for (const [key, e] of this.entries) {
      if (!matches(e.traffic, f)) continue;
      for (const [code] of CODES) this.requests.remove(this.labels(e.traffic, code));
      this.entries.delete(key);
      removed++;
    }
    this.save();
    return removed;
  }

  /** Grows every counter by what its rate made of the time since the last tick. */
  tick(): void {
    const now = performance.now();
    const dt = (now - this.last) / 1000;
    this.last = now;
    for (const e of this.entries.values()) {
      for (const [code, rate] of CODES) {
        e.exact[code] = (e.exact[code] ?? 0) + rate(e.traffic) * dt;
        const whole = Math.floor(e.exact[code]);
        const add = whole - (e.shown[code] ?? 0);
        if (add > 0) {
          this.requests.inc(this.labels(e.traffic, code), add);
          e.shown[code] = whole;
        }
      }
    }
  }

  private labels(t: Traffic, code: string) {
    return { app: t.app, version: t.version, cluster: t.cluster, code };
  }

  private save(): void {
    writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(this.list(), null, 2) + '\n');
    renameSync(`${this.stateFile}.tmp`, this.stateFile);
  }
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024) req.destroy(new Error('body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch {
        reject(new Error('body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string' }, state: { type: 'string' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || !values.state) {
    console.error('usage: node stack/metrics/main.ts --port <port> --state <file>');
    process.exit(2);
  }
  const target = new Target(values.state);
  const timer = setInterval(() => target.tick(), TICK_MS);

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const bad = (message: string) => send(400, { error: 'BadRequest', message });
    const url = new URL(req.url ?? '/', 'http://target');
    const route = `${req.method} ${url.pathname}`;
    void (async () => {
      switch (route) {
        case 'GET /healthz':
          return send(200, { ok: true });
        case 'GET /metrics': {
          target.tick();
          res.writeHead(200, { 'content-type': target.registry.contentType });
          return res.end(await target.registry.metrics());
        }
        case 'GET /v1/traffic':
          return send(200, { traffic: target.list() });
        case 'PUT /v1/traffic': {
          const parsed = TrafficSchema.safeParse(await readBody(req));
          if (!parsed.success) return bad(issues(parsed.error));
          target.set(parsed.data);
          log(`set ${trafficKey(parsed.data)}: ${parsed.data.rps} rps, error rate ${parsed.data.errorRate}`);
          return send(200, { traffic: target.list() });
        }
        case 'POST /v1/traffic/clear': {
          const parsed = TrafficFilterSchema.safeParse(await readBody(req));
          if (!parsed.success) return bad(issues(parsed.error));
          const removed = target.clear(parsed.data);
          log(
            `cleared ${removed} entr${removed === 1 ? 'y' : 'ies'} matching ${JSON.stringify(parsed.data)}`,
          );
          return send(200, { removed, traffic: target.list() });
        }
        default:
          return send(404, { error: 'NotFound', message: `no route ${route}` });
      }
    })().catch((err: Error) => bad(err.message));
  });
  server.listen(port, '127.0.0.1', () => log(`metrics target on http://127.0.0.1:${port}/metrics`));
  server.on('error', (err) => {
    console.error(`port ${port}: ${err.message}`);
    process.exit(1);
  });
  const stop = (signal: string) => {
    log(`${signal}: stopping`);
    clearInterval(timer);
    server.close();
    server.closeAllConnections();
    setImmediate(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) main();
