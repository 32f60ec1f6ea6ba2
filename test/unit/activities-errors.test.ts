/**
 * The error mapping table, fed with what the real client throws: ApiExceptions
 * made by @kubernetes/client-node from a local HTTP server answering with
 * Kubernetes Status bodies, and real network failures (a closed port, a server
 * that hangs up, one that never answers).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { clientsFromKubeConfig, type ClusterClients } from '../../activities/kubernetes/clients.ts';
import { kube, toFailure } from '../../activities/kubernetes/errors.ts';
import { FailureType } from '../../model/reasons.ts';

function clientsFor(server: string, requestTimeoutMs = 2000): ClusterClients {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'secret-token-do-not-leak' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return clientsFromKubeConfig('beijing', kc, { requestTimeoutMs });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Runs a read of a Deployment against `c` and returns the mapped failure. */
async function failureOf(c: ClusterClients): Promise<ApplicationFailure> {
  try {
    await kube(c.cluster, 'read Deployment shop/web', () =>
      c.apps.readNamespacedDeployment({ name: 'web', namespace: 'shop' }),
    );
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

describe('API errors from a Kubernetes-like server', () => {
  let server: Server;
  let url: string;
  // what the server answers to the next request
  let answer: { code: number; reason: string; message: string; causes?: unknown[] } = {
    code: 200,
    reason: '',
    message: '',
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: answer.message,
        reason: answer.reason,
        code: answer.code,
        ...(answer.causes ? { details: { causes: answer.causes } } : {}),
      };
      res.writeHead(answer.code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status));
    });
    url = await listen(server);
  });
  afterAll(() => close(server));

  const table: { code: number; reason: string; type: string; nonRetryable: boolean; causes?: unknown[] }[] = [
    { code: 400, reason: 'BadRequest', type: FailureType.InvalidManifest, nonRetryable: true },
    {
      code: 422,
      reason: 'Invalid',
      type: FailureType.InvalidManifest,
      nonRetryable: true,
      causes: [
        {
          reason: 'FieldValueInvalid',
          message: 'Invalid value: "lots"',
          field: 'spec.template.spec.containers[0].resources.requests',
        },
      ],
    },
    { code: 401, reason: 'Unauthorized', type: FailureType.Forbidden, nonRetryable: true },
    { code: 403, reason: 'Forbidden', type: FailureType.Forbidden, nonRetryable: true },
    {
      code: 403,
      reason: 'Forbidden',
      type: FailureType.Conflict,
      nonRetryable: false,
      causes: [
        {
          reason: 'NamespaceTerminating',
          message: 'namespace shop is being terminated',
          field: 'metadata.namespace',
        },
      ],
    },
    { code: 404, reason: 'NotFound', type: FailureType.NotFound, nonRetryable: true },
    { code: 409, reason: 'Conflict', type: FailureType.Conflict, nonRetryable: false },
    { code: 429, reason: 'TooManyRequests', type: FailureType.ClusterUnreachable, nonRetryable: false },
    { code: 500, reason: 'InternalError', type: FailureType.ClusterUnreachable, nonRetryable: false },
    { code: 503, reason: 'ServiceUnavailable', type: FailureType.ClusterUnreachable, nonRetryable: false },
  ];

  it.each(table)('HTTP $code $reason -> $type (nonRetryable: $nonRetryable)', async (row) => {
    answer = {
      code: row.code,
      reason: row.reason,
      message: `the message for ${row.code}`,
      ...(row.causes ? { causes: row.causes } : {}),
    };
    const f = await failureOf(clientsFor(url));
    expect(f.type).toBe(row.type);
    expect(f.nonRetryable).toBe(row.nonRetryable);
    expect(f.message).toContain('cluster "beijing"');
    expect(f.message).toContain('read Deployment shop/web');
    // The generated client drops the body of a 401 (it throws "Unauthorized" without one).
    if (row.code !== 401) expect(f.message).toContain(`the message for ${row.code}`);
    expect(f.message).not.toContain('secret-token-do-not-leak');
    expect(f.details?.[0]).toMatchObject({
      cluster: 'beijing',
      httpStatus: row.code,
      ...(row.code !== 401 ? { reason: row.reason } : {}),
    });
    if (row.causes)
      expect((f.details?.[0] as { causes: string[] }).causes[0]).toContain(
        (row.causes[0] as { message: string }).message,
      );
  });

  it('a 500 of server-side apply that cannot decode the object (a bad quantity) is InvalidManifest, as the apiserver answers it', async () => {
    answer = {
      code: 500,
      reason: 'InternalError',
      message:
        "failed to convert new object (shop/web; apps/v1, Kind=Deployment) to proper version: unable to convert unstructured object to apps/v1, Kind=Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    };
    const f = await failureOf(clientsFor(url));
    expect(f).toMatchObject({ type: FailureType.InvalidManifest, nonRetryable: true });
    expect(f.message).toContain('quantities must match');
  });

  it('takes an ApiException whose body is already an object, or plain text', () => {
    const obj = toFailure(
      new ApiException(422, 'x', { message: 'spec.replicas: must be >= 0', reason: 'Invalid' }, {}),
      'shenzhen',
      'apply Deployment a/b',
    );
    expect(obj).toMatchObject({ type: FailureType.InvalidManifest, nonRetryable: true });
    expect(obj.message).toContain('spec.replicas: must be >= 0');
    const text = toFailure(new ApiException(502, 'x', 'Bad Gateway', {}), 'shenzhen', 'read Deployment a/b');
    expect(text).toMatchObject({ type: FailureType.ClusterUnreachable, nonRetryable: false });
    expect(text.message).toContain('Bad Gateway');
  });
});

describe('network failures', () => {
  it('a closed port gives ClusterUnreachable (ECONNREFUSED), retryable', async () => {
    const s = createServer();
    const url = await listen(s);
    await close(s); // the port is free and closed now
    const f = await failureOf(clientsFor(url));
    expect(f.type).toBe(FailureType.ClusterUnreachable);
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toMatch(
      /cluster "beijing": read Deployment shop\/web: cannot reach the apiserver \(ECONNREFUSED\)/,
    );
  });

  it('a server that hangs up gives ClusterUnreachable', async () => {
    const s = createServer((req) => req.socket.destroy());
    const url = await listen(s);
    try {
      const f = await failureOf(clientsFor(url));
      expect(f.type).toBe(FailureType.ClusterUnreachable);
      expect(f.nonRetryable).toBe(false);
    } finally {
      await close(s);
    }
  });

  it('a server that never answers gives ClusterUnreachable after the request timeout', async () => {
    const sockets: Socket[] = [];
    const s = createServer((req) => sockets.push(req.socket));
    const url = await listen(s);
    try {
      const t0 = Date.now();
      const f = await failureOf(clientsFor(url, 500));
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(f.type).toBe(FailureType.ClusterUnreachable);
      expect(f.message).toContain('ETIMEDOUT');
    } finally {
      sockets.forEach((k) => k.destroy());
      await close(s);
    }
  });

  it('an unresolvable host gives ClusterUnreachable', async () => {
    const f = await failureOf(clientsFor('https://apiserver.invalid:6443'));
    expect(f.type).toBe(FailureType.ClusterUnreachable);
    expect(f.message).toMatch(/ENOTFOUND|EAI_AGAIN/);
  });
});

describe('pass-through', () => {
  it('keeps ApplicationFailures and cancellations as they are', () => {
    const a = ApplicationFailure.create({
      type: FailureType.RolloutFailed,
      nonRetryable: true,
      message: 'x',
    });
    expect(toFailure(a, 'c', 'op')).toBe(a);
    const c = new CancelledFailure('cancelled');
    expect(toFailure(c, 'c', 'op')).toBe(c);
  });

  it('wraps a surprise as a retryable failure that says where', () => {
    const f = toFailure(new TypeError('boom'), 'cloud-hk', 'list pods of a/b') as ApplicationFailure;
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f.nonRetryable).toBe(false);
    expect(f.type).toBe('TypeError');
    expect(f.message).toBe('cluster "cloud-hk": list pods of a/b: boom');
  });
});
