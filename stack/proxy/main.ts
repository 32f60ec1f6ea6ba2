/**
 * The API-server proxy, one process of the local stack for every cluster:
 *
 *   node stack/proxy/main.ts --control-port <port>
 *
 * For each cluster the stack registers (PUT /v1/clusters/<name> on the control
 * port) it listens on 127.0.0.1:<port> with that apiserver's own serving
 * certificate and key (so the kubeconfig's CA keeps validating) and forwards
 * every request to the apiserver, streaming both ways: a watch flows through
 * chunk by chunk, and no request is cut short by a proxy timeout. Upgrade
 * requests (exec, port-forward) are relayed as raw byte streams.
 *
 * Fault rules (stack/proxy/rules.ts) are switched per cluster at run time:
 * PUT /v1/clusters/<name>/rules {"rules": [...]} replaces them, DELETE clears
 * them; either way, connections held by `hang` and `drop-reply` are closed.
 * DELETE /v1/clusters/<name> closes the listener and every connection (a dead
 * apiserver: connections refused); PUT opens it again. The control port
 * listens on loopback and answers loopback clients only. Nothing here logs
 * headers or bodies: tokens pass through untouched and unseen.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { pipeline } from 'node:stream';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { ActiveRule } from './rules.ts';
import { activate, describeRules, hasActiveRules, ProxyRulesSchema, statusBody, takeRule } from './rules.ts';

const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);

const ClusterSpecSchema = z
  .object({
    /** The port clients use (the kubeconfig's server). */
    port: z.number().int().min(1).max(65535),
    /** The apiserver's secure port on 127.0.0.1. */
    upstreamPort: z.number().int().min(1).max(65535),
    /** The apiserver's serving certificate (leaf and its CA) and key, from its --cert-dir. */
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
  })
  .strict();
type ClusterSpec = z.infer<typeof ClusterSpecSchema>;

/** Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those the Connection header names. */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
];
function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const drop = new Set(HOP_BY_HOP);
  for (const t of String(headers.connection ?? '').split(',')) drop.add(t.trim().toLowerCase());
  const out: http.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !drop.has(k)) out[k] = v;
  return out;
}

function sendStatus(
  res: http.ServerResponse,
  code: number,
  message: string,
  retryAfterSeconds?: number,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(statusBody(code, message, retryAfterSeconds));
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...(retryAfterSeconds !== undefined ? { 'retry-after': String(retryAfterSeconds) } : {}),
  });
  res.end(body);
}

class ClusterProxy {
  readonly name: string;
  spec: ClusterSpec | undefined;
  private server: https.Server | undefined;
  private agent: https.Agent | undefined;
  private ca: string | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Client connections a `hang` or `drop-reply` holds open. */
  private readonly held = new Set<net.Socket>();
  rules: ActiveRule[] = [];
  readonly counts = { requests: 0, forwarded: 0, hang: 0, 'drop-reply': 0, error: 0, delay: 0 };

  constructor(name: string) {
    this.name = name;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** Listens (again) with the certificate as it is on disk now. */
  async open(spec: ClusterSpec): Promise<void> {
    const cert = readFileSync(spec.certFile, 'utf8');
    const key = readFileSync(spec.keyFile, 'utf8');
    if (this.server?.listening && this.spec?.port === spec.port) {
      this.server.setSecureContext({ cert, key });
    } else {
      await this.close();
      const server = https.createServer(
        { cert, key, requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000, noDelay: true },
        (req, res) => this.handle(req, res),
      );
      server.on('connection', (s: net.Socket) => {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
      });
      server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
        this.upgrade(req, socket, head),
      );
      server.on('tlsClientError', () => {}); // a client that gives up mid-handshake
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(spec.port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.server = server;
    }
    // The serving bundle is also the CA to check the apiserver with.
    if (!this.agent || this.ca !== cert || this.spec?.upstreamPort !== spec.upstreamPort) {
      this.agent?.destroy();
      this.agent = new https.Agent({ keepAlive: true, ca: cert, maxSockets: Infinity });
      this.ca = cert;
    }
    this.spec = spec;
    log(`${this.name}: listening on 127.0.0.1:${spec.port} -> apiserver 127.0.0.1:${spec.upstreamPort}`);
  }

  /** Stops listening and ends every connection: clients then see a dead apiserver (refused). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.held.clear();
    await closed;
    this.agent?.destroy();
    this.agent = undefined;
    log(`${this.name}: closed`);
  }

  setRules(rules: ActiveRule[]): void {
    const released = this.held.size;
    for (const s of this.held) s.destroy();
    this.held.clear();
    this.rules = rules;
    log(
      `${this.name}: rules ${hasActiveRules(rules) ? describeRules(rules) : 'cleared'}${released ? `; closed ${released} held connection(s)` : ''}`,
    );
  }

  view() {
    return {
      name: this.name,
      listening: this.listening,
      ...(this.spec ? { port: this.spec.port, upstreamPort: this.spec.upstreamPort } : {}),
      rules: this.rules,
      faulty: hasActiveRules(this.rules),
      describe: describeRules(this.rules),
      held: this.held.size,
      connections: this.sockets.size,
      counts: { ...this.counts },
    };
  }

  private hold(socket: net.Socket): void {
    this.held.add(socket);
    socket.once('close', () => this.held.delete(socket));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.counts.requests++;
    const rule = takeRule(this.rules, req.method ?? 'GET', req.url ?? '/');
    if (!rule) {
      this.forward(req, res);
      return;
    }
    this.counts[rule.action]++;
    switch (rule.action) {
      case 'hang':
        if (rule.reset) req.socket.destroy();
        else this.hold(req.socket);
        return;
      case 'error':
        req.resume();
        sendStatus(
          res,
          rule.status ?? 503,
          rule.message ??
            `the flotilla stack's proxy answered ${rule.status ?? 503} for ${this.name} (fault rule)`,
          rule.retryAfterSeconds,
        );
        return;
      case 'delay': {
        const timer = setTimeout(() => this.forward(req, res), rule.delayMs);
        res.once('close', () => clearTimeout(timer));
        return;
      }
      case 'drop-reply':
        if (!rule.reset) this.hold(req.socket);
        this.forward(req, res, (upRes) => {
          upRes.resume(); // the apiserver answered; nobody will hear it
          if (rule.reset) upRes.once('end', () => req.socket.destroy());
        });
        return;
    }
  }

  /** Sends the request to the apiserver; streams the answer back unless `onResponse` takes it. */
  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    onResponse?: (upRes: http.IncomingMessage) => void,
  ): void {
    const spec = this.spec;
    if (!spec || !this.agent || res.destroyed) {
      res.destroy();
      return;
    }
    this.counts.forwarded++;
    const up = https.request({
      host: '127.0.0.1',
      port: spec.upstreamPort,
      method: req.method,
      path: req.url,
      headers: { ...endToEnd(req.headers), host: `127.0.0.1:${spec.upstreamPort}` },
      agent: this.agent,
    });
    up.on('response', (upRes) => {
      if (onResponse) {
        onResponse(upRes);
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEnd(upRes.headers));
      res.flushHeaders(); // a watch's client hears the headers before the first event
      pipeline(upRes, res, (err) => {
        if (err) res.destroy(); // the apiserver went away mid-answer: so does the connection
      });
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      sendStatus(
        res,
        502,
        `the flotilla stack's proxy could not reach ${this.name}'s apiserver at 127.0.0.1:${spec.upstreamPort}: ${err.code ?? err.message}`,
      );
    });
    res.once('close', () => {
      if (!res.writableFinished) up.destroy(); // the client left (or gave up on a held answer)
    });
    req.pipe(up);
  }

  /** Upgrade requests (exec, attach, port-forward): a raw relay once the apiserver takes the upgrade. */
  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    this.counts.requests++;
    const rule = takeRule(this.rules, req.method ?? 'GET', req.url ?? '/');
    if (rule) this.counts[rule.action]++;
    if (rule?.action === 'hang' || rule?.action === 'drop-reply') {
      if (rule.reset) socket.destroy();
      else this.hold(socket);
      return;
    }
    if (rule?.action === 'error') {
      const code = rule.status ?? 503;
      const body = JSON.stringify(statusBody(code, rule.message ?? 'fault rule'));
      socket.end(
        `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const go = () => {
      const spec = this.spec;
      if (!spec || socket.destroyed) return socket.destroy();
      this.counts.forwarded++;
      const upstream = tls.connect({ host: '127.0.0.1', port: spec.upstreamPort, ca: this.ca }, () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
          if (req.rawHeaders[i]!.toLowerCase() === 'host') continue;
          lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        }
        lines.push(`Host: 127.0.0.1:${spec.upstreamPort}`);
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      socket.once('close', () => upstream.destroy());
      upstream.once('close', () => socket.destroy());
    };
    if (rule?.action === 'delay') setTimeout(go, rule.delayMs);
    else go();
  }
}

function main(): void {
  const { values } = parseArgs({ options: { 'control-port': { type: 'string' } } });
  const controlPort = Number(values['control-port']);
  if (!Number.isInteger(controlPort) || controlPort < 1 || controlPort > 65535) {
    console.error('usage: node stack/proxy/main.ts --control-port <port>');
    process.exit(2);
  }
  const clusters = new Map<string, ClusterProxy>();
  const name = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);

  const app = express();
  app.disable('x-powered-by');
  app.use((req: Request, res: Response, next: NextFunction) => {
    const from = req.socket.remoteAddress ?? '';
    if (from === '127.0.0.1' || from === '::1' || from === '::ffff:127.0.0.1') return next();
    res.status(403).json({ error: 'Forbidden', message: 'loopback clients only' });
  });
  app.use(express.json({ limit: '256kb' }));
  const cluster = (req: Request, res: Response, create = false): ClusterProxy | undefined => {
    const n = name.safeParse(req.params.name);
    if (!n.success) {
      res.status(400).json({ error: 'BadRequest', message: `bad cluster name "${String(req.params.name)}"` });
      return undefined;
    }
    let c = clusters.get(n.data);
    if (!c && create) clusters.set(n.data, (c = new ClusterProxy(n.data)));
    if (!c) res.status(404).json({ error: 'NotFound', message: `no cluster "${n.data}" registered` });
    return c;
  };
  const invalid = (res: Response, err: z.ZodError) =>
    res.status(400).json({
      error: 'BadRequest',
      message: err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '),
      details: err.issues,
    });

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/v1/clusters', (_req, res) => {
    res.json({ clusters: [...clusters.values()].map((c) => c.view()) });
  });
  app.get('/v1/clusters/:name', (req, res) => {
    const c = cluster(req, res);
    if (c) res.json(c.view());
  });
  app.put('/v1/clusters/:name', async (req, res) => {
    const spec = ClusterSpecSchema.safeParse(req.body);
    if (!spec.success) return void invalid(res, spec.error);
    const c = cluster(req, res, true);
    if (!c) return;
    try {
      await c.open(spec.data);
      res.json(c.view());
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      res.status(e.code === 'EADDRINUSE' ? 409 : 500).json({ error: e.code ?? 'Error', message: e.message });
    }
  });
  app.delete('/v1/clusters/:name', async (req, res) => {
    const c = cluster(req, res);
    if (!c) return;
    await c.close();
    res.json(c.view());
  });
  app.put('/v1/clusters/:name/rules', (req, res) => {
    const body = ProxyRulesSchema.safeParse(req.body);
    if (!body.success) return void invalid(res, body.error);
    const c = cluster(req, res);
    if (!c) return;
    c.setRules(activate(body.data.rules));
    res.json(c.view());
  });
  app.delete('/v1/clusters/:name/rules', (req, res) => {
    const c = cluster(req, res);
    if (!c) return;
    c.setRules([]);
    res.json(c.view());
  });
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status ?? 500).json({ error: 'Error', message: err.message });
  });

  const control = app.listen(controlPort, '127.0.0.1', () =>
    log(`control endpoint on http://127.0.0.1:${controlPort}`),
  );
  control.on('error', (err) => {
    console.error(`control port ${controlPort}: ${err.message}`);
    process.exit(1);
  });
  const stop = (signal: string) => {
    log(`${signal}: closing`);
    control.close();
    control.closeAllConnections();
    void Promise.all([...clusters.values()].map((c) => c.close())).then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
