/**
 * The Harbor contract: the adapter's types are what Harbor's spec gives, and
 * the Harbor double refuses what breaks the spec, in requests and in its own
 * responses (so a drift from Harbor's contract fails the tests).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarborDouble, type HarborDouble } from '../../activities/harbor/testing/double.ts';
import { generateHarborTypes, HARBOR_TYPES } from '../../activities/harbor/testing/spec.ts';

describe('Harbor types', () => {
  it('harbor-api.ts is what the spec gives (regenerate with activities/harbor/testing/generate.ts)', async () => {
    expect(readFileSync(HARBOR_TYPES, 'utf8')).toBe(await generateHarborTypes());
  }, 120_000);
});

describe('the Harbor double validates against the spec', () => {
  let double: HarborDouble;
  const auth = { authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}` };
  beforeAll(async () => {
    double = await startHarborDouble({ localRegistry: '127.0.0.1:9', username: 'admin', password: 'pw' });
  }, 120_000);
  afterAll(() => double.stop());

  const req = (method: string, path: string, body?: unknown) => ({
    method,
    path: `/api/v2.0${path}`,
    headers: { 'content-type': 'application/json', ...auth },
    ...(body !== undefined ? { body } : {}),
  });

  it('accepts a request as Harbor documents it', () => {
    expect(double.validateRequest(req('POST', '/replication/executions', { policy_id: 7 }))).toEqual([]);
    expect(
      double.validateRequest(
        req('POST', '/replication/policies', {
          name: 'p',
          dest_registry: { id: 1 },
          filters: [{ type: 'name', value: 'demo/web' }],
          trigger: { type: 'manual' },
          override: true,
          enabled: true,
        }),
      ),
    ).toEqual([]);
  });

  it.each([
    [
      'a string for an int64',
      req('POST', '/replication/executions', { policy_id: 'seven' }),
      'must be integer',
    ],
    [
      'a field the spec does not have',
      req('POST', '/replication/executions', { policy_id: 7, policy: 7 }),
      'must NOT have additional properties',
    ],
    [
      'a misspelt policy field',
      req('POST', '/replication/policies', { name: 'p', dest_registy: { id: 1 } }),
      'must NOT have additional properties',
    ],
    [
      'a filter of the wrong shape',
      req('POST', '/replication/policies', { name: 'p', filters: { type: 'name' } }),
      'must be array',
    ],
    ['a path id that is not a number', req('GET', '/replication/executions/abc'), 'must be integer'],
  ])('refuses %s', (_what, r, message) => {
    const problems = double.validateRequest(r);
    expect(problems.join('; ')).toContain(message);
  });

  it('refuses a response outside the spec', () => {
    const ok = {
      id: 3,
      policy_id: 1,
      status: 'Success',
      status_text: '',
      trigger: 'MANUAL',
      start_time: '2026-01-01T00:00:00Z',
      total: 1,
      failed: 0,
      succeed: 1,
      in_progress: 0,
      stopped: 0,
    };
    expect(double.validateResponse('getReplicationExecution', 200, ok, { 'X-Request-Id': 'r' })).toEqual([]);
    expect(
      double
        .validateResponse('getReplicationExecution', 200, { ...ok, total: '1' }, { 'X-Request-Id': 'r' })
        .join(),
    ).toContain('must be integer');
    expect(
      double
        .validateResponse('getReplicationExecution', 200, { ...ok, succeeded: 1 }, { 'X-Request-Id': 'r' })
        .join(),
    ).toContain('additional properties');
    expect(
      double.validateResponse('startReplication', 201, undefined, { 'X-Request-Id': 'r' }).join(),
    ).toContain('Location missing');
    expect(
      double.validateResponse('startReplication', 202, undefined, { 'X-Request-Id': 'r' }).join(),
    ).toContain('no 202 response');
  });

  it('answers a bad request over HTTP with 400 and records the violation', async () => {
    const before = double.violations.length;
    const res = await fetch(`${double.url}/api/v2.0/replication/executions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ policy: 1 }),
    });
    expect(res.status).toBe(400);
    expect(double.violations.slice(before).join()).toContain('startReplication');
    const unknown = await fetch(`${double.url}/api/v2.0/replication/runs`, { headers: auth });
    expect(unknown.status).toBe(404);
    expect(double.violations.at(-1)).toContain('no such route');
    const noAuth = await fetch(`${double.url}/api/v2.0/replication/policies`);
    expect(noAuth.status).toBe(401);
  });
});
