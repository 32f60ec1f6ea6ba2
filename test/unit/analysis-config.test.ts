import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import {
  analysisProblems,
  loadAnalysisConfig,
  measureOnce,
  parseAnalysisConfig,
  urlAllowed,
} from '../../activities/analysis/index.ts';
import { measuredFromData, sampleValue } from '../../activities/analysis/prometheus.ts';
import { AnalysisSchema } from '../../model/analysis.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'analysis-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadAnalysisConfig', () => {
  it('the environment alone: the default Prometheus and the allowed URLs', () => {
    const c = loadAnalysisConfig({
      FLOTILLA_PROMETHEUS_URL: 'http://127.0.0.1:9090',
      FLOTILLA_ANALYSIS_WEB_ALLOWED_URLS: 'https://m.example.com/api/, http://127.0.0.1:8080',
    });
    expect(c.prometheus.default).toMatchObject({ url: 'http://127.0.0.1:9090', tls: 'verify', headers: {} });
    expect(c.web.allowedUrls).toEqual(['https://m.example.com/api/', 'http://127.0.0.1:8080']);
    expect(Object.isFrozen(c.prometheus.default)).toBe(true);
    expect(loadAnalysisConfig({}).prometheus).toEqual({});
  });

  it('a file with credentials must be private; the environment wins over it', () => {
    const file = path.join(dir, 'analysis.yaml');
    writeFileSync(
      file,
      'prometheus:\n  default: {url: "http://file:9090", bearerToken: "tok-123"}\n  beijing: {url: "https://prom.bj:9090", tls: skip-verify}\nweb:\n  credentials:\n    api: {headers: {Authorization: "Bearer abc"}}\n',
    );
    chmodSync(file, 0o644);
    expect(() => loadAnalysisConfig({ FLOTILLA_ANALYSIS_CONFIG: file })).toThrow(
      /holds credentials and is readable by group or others \(mode 644\): chmod 600/,
    );
    chmodSync(file, 0o600);
    const c = loadAnalysisConfig({
      FLOTILLA_ANALYSIS_CONFIG: file,
      FLOTILLA_PROMETHEUS_URL: 'http://env:9090',
    });
    expect(c.prometheus.default).toMatchObject({ url: 'http://env:9090', bearerToken: 'tok-123' });
    expect(c.prometheus.beijing!.tls).toBe('skip-verify');
    expect(c.web.credentials.api!.headers.Authorization).toBe('Bearer abc');
  });

  it.each<[string, unknown, RegExp]>([
    [
      'a URL with credentials',
      { prometheus: { default: { url: 'http://u:p@prom:9090' } } },
      /prometheus\.default\.url: must not hold credentials/,
    ],
    [
      'a URL with a query',
      { prometheus: { default: { url: 'http://prom:9090/?x=1' } } },
      /must have no query/,
    ],
    ['not a URL', { prometheus: { default: { url: 'prom:9090' } } }, /prometheus\.default\.url/],
    [
      'two kinds of auth',
      {
        prometheus: {
          default: { url: 'http://p', bearerToken: 'a', basicAuth: { username: 'u', password: 'p' } },
        },
      },
      /at most one of/,
    ],
    [
      'a server name that is no label',
      { prometheus: { Default: { url: 'http://p' } } },
      /prometheus\.Default/,
    ],
    ['an unknown field', { prometheus: { default: { url: 'http://p', adress: 'x' } } }, /adress/],
  ])('refuses %s, naming the field and never a value', (_, doc, message) => {
    let err: Error | undefined;
    try {
      parseAnalysisConfig(doc);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(message);
    expect(err?.message).not.toMatch(/u:p@|Bearer/);
  });
});

describe('urlAllowed', () => {
  const allowed = ['https://m.example.com/api/', 'http://127.0.0.1:8080'];
  it.each<[string, boolean]>([
    ['https://m.example.com/api/ratio?app=web', true],
    ['https://m.example.com/api', false],
    ['https://m.example.com/apiary', false],
    ['https://m.example.com/other', false],
    ['http://m.example.com/api/ratio', false], // another scheme
    ['https://m.example.com:8443/api/ratio', false], // another port
    ['https://m.example.com.evil.io/api/', false],
    ['http://127.0.0.1:8080/anything', true],
    ['http://127.0.0.1:8081/anything', false],
    ['http://169.254.169.254/latest/meta-data', false],
  ])('%s -> %s', (url, want) => {
    expect(urlAllowed(url, allowed)).toBe(want);
  });
  it('allows nothing when the list is empty', () => {
    expect(urlAllowed('http://127.0.0.1:8080/x', [])).toBe(false);
  });
});

describe('Prometheus answers, as the conditions see them', () => {
  it.each<[string, number]>([
    ['0.25', 0.25],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
    ['1e-3', 0.001],
  ])('sample %s is %s', (s, want) => expect(sampleValue(s)).toBe(want));
  it('sample NaN is NaN', () => expect(sampleValue('NaN')).toBeNaN());

  const vec = (...vals: string[]) => ({
    resultType: 'vector',
    result: vals.map((v, i) => ({ metric: { cluster: `c${i}` }, value: [1, v] })),
  });
  it('one sample: a number; several: the list; values always the list', () => {
    expect(measuredFromData(vec('0.1'), 'p').value).toEqual({ result: 0.1, values: [0.1] });
    expect(measuredFromData(vec('0.1', '0.3'), 'p').value).toEqual({
      result: [0.1, 0.3],
      values: [0.1, 0.3],
    });
    expect(measuredFromData({ resultType: 'scalar', result: [1, '7'] }, 'p').value).toEqual({
      result: 7,
      values: [7],
    });
    expect(measuredFromData(vec('0.1', '0.3'), 'p').raw).toBe(
      'vector of 2: {cluster="c0"} 0.1; {cluster="c1"} 0.3',
    );
  });
  it('an empty vector, a NaN scalar and all-NaN samples are no data', () => {
    expect(measuredFromData(vec(), 'p').value).toEqual({
      noData: 'the query returned an empty vector (no series matched)',
    });
    expect(measuredFromData({ resultType: 'scalar', result: [1, 'NaN'] }, 'p').value).toHaveProperty(
      'noData',
    );
    expect(measuredFromData(vec('NaN', 'NaN'), 'p').value).toHaveProperty('noData');
    expect(measuredFromData(vec('NaN', '0.2'), 'p').value).toHaveProperty('result');
  });
  it('a matrix or a string is AnalysisQueryInvalid', () => {
    expect(() => measuredFromData({ resultType: 'matrix', result: [] }, 'p')).toThrow(/range vector/);
    expect(() => measuredFromData({ resultType: 'string', result: [1, 'x'] }, 'p')).toThrow(
      /instant vector or a scalar/,
    );
  });
});

describe('the analysis against a worker configuration', () => {
  const config = parseAnalysisConfig({
    prometheus: { default: { url: 'http://127.0.0.1:1' } },
    web: { allowedUrls: ['https://m.example.com/api/'] },
  });
  const prom = (server?: string) =>
    AnalysisSchema.parse({
      name: 'x',
      provider: { prometheus: { query: 'x{app="{{app}}"}', ...(server ? { server } : {}) } },
      successCondition: 'result < 1.0',
    });
  const web = (url: string, credentials?: string) =>
    AnalysisSchema.parse({
      name: 'x',
      provider: { web: { url, ...(credentials ? { credentials } : {}) } },
      successCondition: 'result < 1.0',
    });

  it.each<[string, ReturnType<typeof prom>, RegExp | null]>([
    ['the default server', prom(), null],
    ['an unknown server', prom('shenzhen'), /no Prometheus server named "shenzhen" \(known: default\)/],
    ['an allowed URL', web('https://m.example.com/api/ratio?app={{app}}'), null],
    ['a URL not allowed', web('https://other.example.com/x'), /not under a URL this worker allows/],
    ['unknown credentials', web('https://m.example.com/api/x', 'nope'), /no web credentials named "nope"/],
  ])('%s', (_, a, problem) => {
    const got = analysisProblems(a, { app: 'web' }, config);
    if (problem) expect(got.join()).toMatch(problem);
    else expect(got).toEqual([]);
  });

  it('a variable the delivery has no value for is AnalysisConfigInvalid before any request', async () => {
    const err = await measureOnce(
      { config, logger: pino({ level: 'silent' }) },
      { analysis: prom(), vars: {}, at: 0 },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisConfigInvalid', nonRetryable: true });
    expect((err as Error).message).toMatch(/no value for \{\{app\}\}/);
  });

  it('an invalid analysis is AnalysisConfigInvalid with the field path', async () => {
    const err = await measureOnce(
      { config, logger: pino({ level: 'silent' }) },
      { analysis: { ...prom(), successCondition: 'reslt < 1' } as never, vars: { app: 'web' }, at: 0 },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'AnalysisConfigInvalid' });
    expect((err as Error).message).toMatch(/successCondition: does not type-check/);
  });
});
