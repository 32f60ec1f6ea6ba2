/**
 * The HTTP API without a Temporal server: authentication and roles, the 400
 * and 422 answers to bad input, the OpenAPI document, health, and what reaches
 * the log. The Temporal client here is a recorder that fails on any call: it
 * proves that nothing starts on bad input. Everything that needs Temporal is in
 * test/workflows/api.test.ts, against a real server.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import request from 'supertest';
import { Client, Connection } from '@temporalio/client';
import type { ClusterInfo } from '../../model/index.ts';
import { createApp } from '../../api/app.ts';
import { TokenStore, type TokensFile } from '../../api/auth.ts';
import { Deliveries } from '../../api/deliveries.ts';
import { createLogger } from '../../api/logger.ts';
import { routeTable, v1Routes } from '../../api/routes.ts';

const tokens: TokensFile = {
  'ci-token-0123456789abcdef': { name: 'gitlab-ci', role: 'ci' },
  'sre-token-0123456789abcdef': { name: 'alice', role: 'sre' },
  'rm-token-0123456789abcdef': { name: 'bob', role: 'release-manager' },
  'viewer-token-0123456789abcdef': { name: 'carol', role: 'viewer' },
};
const bearer = (role: 'ci' | 'sre' | 'rm' | 'viewer') => `Bearer ${role}-token-0123456789abcdef`;

const fleet: ClusterInfo[] = [
  {
    name: 'beijing',
    region: 'cn-north',
    provider: 'private',
    labels: { region: 'cn-north', provider: 'private' },
    capacity: 2,
    taskQueue: 'q-beijing',
  },
  {
    name: 'shenzhen',
    region: 'cn-south',
    provider: 'private',
    labels: { region: 'cn-south', provider: 'private' },
    capacity: 1,
    taskQueue: 'q-shenzhen',
  },
  {
    name: 'cloud-hk',
    region: 'ap-east',
    provider: 'public',
    labels: { region: 'ap-east', provider: 'public' },
    capacity: 1,
    taskQueue: 'q-cloud-hk',
  },
];

/** A Temporal client that records every call and refuses it: any entry in `calls` means something reached Temporal. */
function recordingClient(): { client: Client; calls: string[] } {
  const calls: string[] = [];
  const make = (path: string): unknown =>
    new Proxy(function () {}, {
      get: (_t, prop) => (prop === 'then' ? undefined : make(`${path}.${String(prop)}`)),
      apply: (_t, _this, _args) => {
        calls.push(path);
        throw new Error(`unexpected Temporal call ${path}`);
      },
    });
  return { client: make('temporal') as Client, calls };
}

function logSink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

function setup() {
  const { client, calls } = recordingClient();
  const sink = logSink();
  const app = createApp({
    temporal: client,
    inventory: fleet,
    tokens,
    logger: createLogger('info', sink.stream),
  });
  return { app, calls, logs: sink.text };
}

const goodRequest = {
  type: 'deploy',
  app: {
    name: 'web',
    namespace: 'shop',
    image: 'harbor.central:5000/demo/web:v2',
    replicas: 6,
    placement: { clusters: ['beijing', 'shenzhen', 'cloud-hk'] },
  },
  waves: [['beijing'], ['shenzhen', 'cloud-hk']],
  onFailure: 'rollback',
};
const withApp = (app: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({
  ...goodRequest,
  ...rest,
  app: { ...goodRequest.app, ...app },
});

describe('authentication and roles', () => {
  it('answers 401 with a Bearer challenge without a token, with an unknown one, and with another scheme', async () => {
    const { app, calls } = setup();
    for (const auth of [undefined, 'Bearer not-a-known-token-at-all', 'Basic Y2k6Y2k=', 'Bearer']) {
      const req = request(app).post('/v1/deliveries').send(goodRequest);
      const res = await (auth ? req.set('Authorization', auth) : req);
      expect(res.status, String(auth)).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="flotilla"/);
      expect(res.body).toMatchObject({ error: 'Unauthorized', requestId: expect.any(String) });
    }
    expect(calls).toEqual([]);
  });

  it('answers 401 before looking at the body: an anonymous caller learns nothing from a parse error', async () => {
    const { app } = setup();
    const res = await request(app)
      .post('/v1/deliveries')
      .set('Content-Type', 'application/json')
      .send('{not json');
    expect(res.status).toBe(401);
  });

  it('answers 403 to roles that may not start deliveries or act on them', async () => {
    const { app, calls } = setup();
    for (const who of ['viewer', 'rm'] as const) {
      const res = await request(app)
        .post('/v1/deliveries')
        .set('Authorization', bearer(who))
        .send(goodRequest);
      expect(res.status, who).toBe(403);
      expect(res.body.error).toBe('Forbidden');
    }
    for (const who of ['viewer', 'ci'] as const) {
      const res = await request(app)
        .post('/v1/deliveries/delivery-x/actions')
        .set('Authorization', bearer(who))
        .send({ action: 'retry' });
      expect(res.status, who).toBe(403);
      expect(res.body.message).toContain('allowed: release-manager, sre');
    }
    // A release manager decides gates, nothing else.
    const rm = await request(app).post('/v1/deliveries/delivery-x/actions').set('Authorization', bearer('rm')).send({ action: 'retry' });
    expect(rm.status).toBe(403);
    expect(rm.body.message).toBe('retry needs permission act, which role release-manager does not have');
    expect(calls).toEqual([]);
  });

  it('lets every role read (an id that cannot be a delivery is a 404 without asking Temporal)', async () => {
    const { app, calls } = setup();
    for (const who of ['viewer', 'rm', 'ci', 'sre'] as const) {
      const res = await request(app).get('/v1/deliveries/app-shop-web').set('Authorization', bearer(who));
      expect(res.status, who).toBe(404);
    }
    expect(calls).toEqual([]);
  });

  it('maps tokens to callers and refuses the rest', () => {
    const store = new TokenStore(tokens);
    expect(store.verify('sre-token-0123456789abcdef')).toEqual({ name: 'alice', role: 'sre' });
    expect(store.verify('sre-token-0123456789abcdeF')).toBeUndefined();
    expect(store.verify('')).toBeUndefined();
    expect(store.size).toBe(4);
  });
});

describe('malformed input: 400 with field paths, nothing starts', () => {
  const cases: [string, unknown, string[]][] = [
    ['replicas of the wrong type', withApp({ replicas: 'six' }), ['app.replicas']],
    ['a missing app', { type: 'deploy' }, ['app']],
    ['an unknown field', { ...goodRequest, colour: 'blue' }, ['colour']],
    ['an unknown type', { ...goodRequest, type: 'teleport' }, ['type']],
    ['a placement of neither form', withApp({ placement: { regions: ['x'] } }), ['app.placement']],
    [
      'a cluster name that is no DNS label',
      withApp({ placement: { clusters: ['Bei_Jing'] } }),
      ['app.placement.clusters.0'],
    ],
    ['an empty wave', { ...goodRequest, waves: [['beijing'], []] }, ['waves.1']],
    [
      'a bad onFailure and a bad duration',
      { ...goodRequest, onFailure: 'pray', rolloutTimeout: 'soon' },
      ['onFailure', 'rolloutTimeout'],
    ],
    [
      'a negative override',
      withApp({ overrides: { beijing: { replicas: -1 } } }),
      ['app.overrides.beijing.replicas'],
    ],
  ];
  it.each(cases)('%s', async (_name, body, paths) => {
    const { app, calls } = setup();
    const res = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .send(body as object);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('InvalidRequest');
    expect((res.body.details as { path: string }[]).map((d) => d.path).sort()).toEqual(paths.sort());
    for (const d of res.body.details as { message: string }[]) expect(d.message).not.toBe('');
    expect(calls).toEqual([]);
  });

  it('answers 400 to a body that is not JSON, and 415 to one that is not declared JSON', async () => {
    const { app, calls } = setup();
    const bad = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .set('Content-Type', 'application/json')
      .send('{"type": "deploy",');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'MalformedJson', requestId: expect.any(String) });
    const text = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .set('Content-Type', 'text/plain')
      .send('type=deploy');
    expect(text.status).toBe(415);
    expect(calls).toEqual([]);
  });

  it('answers 413 to a body over 1.5 MiB (Temporal refuses payloads over 2 MiB) and starts nothing', async () => {
    const { app, calls } = setup();
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {blob: "${'x'.repeat(1_700_000)}"}\n`;
    const res = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ type: 'deploy', app: { name: 'web', namespace: 'shop', source: { manifests: yaml }, placement: { clusters: ['beijing'] } } }));
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('PayloadTooLarge');
    expect(res.body.message).toMatch(/oci:\/\//);
    expect(calls).toEqual([]);
  });

  it('answers 400 to a bad action, a bad Idempotency-Key and bad query strings', async () => {
    const { app, calls } = setup();
    const action = await request(app)
      .post('/v1/deliveries/delivery-abc/actions')
      .set('Authorization', bearer('sre'))
      .send({ action: 'reboot', cluster: 'x' });
    expect(action.status).toBe(400);
    expect(action.body.details).toEqual([{ path: 'action', message: expect.any(String) }]);
    const key = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .set('Idempotency-Key', 'k'.repeat(300))
      .send(goodRequest);
    expect(key.status).toBe(400);
    for (const q of [
      'phase=Sleeping',
      'limit=0',
      'limit=many',
      'app=Shop/Web',
      'app=a&app=b',
      'colour=blue',
    ]) {
      const res = await request(app).get(`/v1/deliveries?${q}`).set('Authorization', bearer('viewer'));
      expect(res.status, q).toBe(400);
    }
    const appName = await request(app).get('/v1/apps/Not_A_Name').set('Authorization', bearer('viewer'));
    expect(appName.status).toBe(400);
    expect(appName.body.details).toEqual([{ path: 'name', message: expect.any(String) }]);
    expect(calls).toEqual([]);
  });
});

describe('impossible input: 422, nothing starts', () => {
  const cases: [string, unknown, string, RegExp][] = [
    [
      'an unknown cluster',
      withApp({ placement: { clusters: ['beijing', 'mars'] } }),
      'app.placement.clusters.1',
      /unknown cluster "mars"/,
    ],
    ['an unparsable image reference', withApp({ image: 'UPPER/Case::bad' }), 'app.image', /UPPER\/Case::bad/],
    [
      'a selector no cluster matches',
      withApp({ placement: { selector: { region: 'moon' } } }),
      'app.placement.selector',
      /no cluster matches/,
    ],
    [
      'a wave with an unplaced cluster',
      { ...goodRequest, waves: [['beijing'], ['shenzhen', 'tokyo']] },
      'waves.1.1',
      /not placed/,
    ],
    [
      'a placed cluster in no wave',
      { ...goodRequest, waves: [['beijing'], ['shenzhen']] },
      'waves',
      /cloud-hk/,
    ],
    ['fewer replicas than clusters', withApp({ replicas: 2 }), 'app.replicas', /at least one/],
    [
      'an override for an unplaced cluster',
      withApp(
        { placement: { clusters: ['beijing'] }, overrides: { shenzhen: { replicas: 1 } } },
        { waves: undefined },
      ),
      'app.overrides.shenzhen',
      /not placed/,
    ],
  ];
  it.each(cases)('%s', async (_name, body, path, message) => {
    const { app, calls } = setup();
    const res = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('sre'))
      .send(body as object);
    expect(res.status).toBe(422);
    expect(res.body.error).toBe('Unprocessable');
    expect(res.body.details).toEqual([{ path, message: expect.stringMatching(message) }]);
    expect(calls).toEqual([]);
  });

  it('answers 400, not 422, when an image problem comes with malformed fields', async () => {
    const { app } = setup();
    const res = await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .send(withApp({ image: 'UPPER/Case::bad', replicas: -1 }));
    expect(res.status).toBe(400);
    expect((res.body.details as { path: string }[]).map((d) => d.path).sort()).toEqual([
      'app.image',
      'app.replicas',
    ]);
  });
});

describe('GET /openapi.json', () => {
  it('documents every route the app serves, with the request schemas and the bearer scheme', async () => {
    const { app } = setup();
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody?: { content: Record<string, { schema: { $ref: string } }> };
            responses: Record<string, unknown>;
          }
        >
      >;
      components: {
        schemas: Record<
          string,
          {
            oneOf?: { properties: Record<string, unknown>; required: string[] }[];
            properties?: Record<string, unknown>;
          }
        >;
        securitySchemes: Record<string, unknown>;
      };
      security: unknown;
    };
    expect(doc.openapi).toBe('3.1.0');

    // The table the document is written from is the router's own list of routes.
    const served = v1Routes(
      new Deliveries({ temporal: recordingClient().client, fleet, taskQueue: 'x' }),
      fleet,
    )
      .stack.filter((l) => l.route)
      .flatMap((l) =>
        Object.keys((l.route as unknown as { methods: Record<string, boolean> }).methods).map(
          (m) => `${m} /v1${l.route!.path}`,
        ),
      );
    expect(served.sort()).toEqual(routeTable.map((r) => `${r.method} ${r.path}`).sort());
    for (const r of routeTable) {
      const path = r.path.replace(/:(\w+)/g, '{$1}');
      expect(doc.paths[path]?.[r.method], `${r.method} ${path}`).toBeDefined();
      expect(Object.keys(doc.paths[path]![r.method]!.responses)).toEqual(
        expect.arrayContaining(['200', '401', '403']),
      );
    }
    for (const p of ['/healthz', '/readyz', '/openapi.json']) expect(doc.paths[p]?.get).toBeDefined();

    const start = doc.paths['/v1/deliveries']!.post!;
    expect(start.requestBody!.content['application/json']!.schema.$ref).toBe(
      '#/components/schemas/DeliveryRequest',
    );
    expect(Object.keys(start.responses)).toEqual(expect.arrayContaining(['202', '400', '409', '422']));
    const deploy = doc.components.schemas.DeliveryRequest as unknown as { required: string[]; properties: Record<string, unknown> };
    expect(deploy.required).toEqual(expect.arrayContaining(['type', 'app']));
    expect(deploy.properties.app).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['name', 'placement']),
      properties: expect.objectContaining({ source: expect.anything(), image: expect.anything(), replicas: expect.anything() }),
    });
    expect(doc.components.schemas.ActionRequest!.properties!.action).toMatchObject({
      enum: ['retry', 'skip', 'rollback', 'abort', 'approve', 'reject', 'promote'],
    });
    expect(doc.components.schemas.DeliveryStatus!.properties).toHaveProperty('clusters');
    expect(doc.components.securitySchemes.bearer).toEqual(
      expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    );
    expect(doc.security).toEqual([{ bearer: [] }]);
  });
});

describe('health', () => {
  it('/healthz answers while Temporal is unreachable, /readyz does not', async () => {
    const connection = Connection.lazy({ address: '127.0.0.1:1' }); // nothing listens on port 1
    const temporal = new Client({ connection });
    const app = createApp({
      temporal,
      inventory: fleet,
      tokens,
      logger: createLogger('silent'),
      readyDeadlineMs: 500,
    });
    expect((await request(app).get('/healthz')).status).toBe(200);
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ error: 'NotReady', requestId: expect.any(String) });
    await connection.close().catch(() => undefined);
  });

  it('answers unknown routes with the error shape and echoes a given request id', async () => {
    const { app } = setup();
    const res = await request(app).get('/v2/nothing').set('X-Request-Id', 'req-42');
    expect(res.status).toBe(404);
    expect(res.headers['x-request-id']).toBe('req-42');
    expect(res.body).toEqual({
      error: 'NotFound',
      message: 'no route GET /v2/nothing',
      details: [],
      requestId: 'req-42',
    });
  });
});

describe('logging', () => {
  it('logs one line per request with the caller name and never a token', async () => {
    const { app, logs } = setup();
    await request(app)
      .post('/v1/deliveries')
      .set('Authorization', bearer('ci'))
      .send(withApp({ replicas: 'x' }));
    await request(app).post('/v1/deliveries').set('Authorization', bearer('viewer')).send(goodRequest);
    await request(app).get('/v1/deliveries/nope').set('Authorization', 'Bearer not-a-known-token-at-all');
    const lines = logs()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === 'request').map((l) => [l.status, l.caller])).toEqual([
      [400, 'gitlab-ci'],
      [403, 'carol'],
      [401, undefined],
    ]);
    expect(logs()).not.toMatch(/token-0123456789abcdef|not-a-known-token/);
  });

  it('redacts token-like fields whoever logs them', () => {
    const sink = logSink();
    createLogger('info', sink.stream).info(
      { headers: { authorization: 'Bearer s3cret' }, token: 's3cret', cluster: { kubeconfig: 's3cret' } },
      'x',
    );
    expect(sink.text()).not.toContain('s3cret');
    expect(sink.text()).toContain('[redacted]');
  });
});
