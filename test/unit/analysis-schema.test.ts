import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AnalysesSchema,
  AnalysisSchema,
  AnalysisVarNames,
  compileCondition,
  fillTemplate,
  judge,
  TemplateError,
  templateProblems,
  templateVars,
  type AnalysisInput,
} from '../../model/analysis.ts';

const example: AnalysisInput = {
  name: 'error-rate',
  provider: {
    prometheus: {
      query:
        'sum(rate(http_requests_total{app="{{app}}",version="{{version}}",code=~"5.."}[30s])) / sum(rate(http_requests_total{app="{{app}}",version="{{version}}"}[30s]))',
    },
  },
  interval: '10s',
  count: 5,
  successCondition: 'result < 0.05',
  failureCondition: 'result >= 0.2',
  failureLimit: 1,
  inconclusiveLimit: 2,
  consecutiveErrorLimit: 4,
};

/** Field path -> message of every issue, for asserting on what a 400 would say. */
function issues(input: unknown): Record<string, string> {
  const r = AnalysisSchema.safeParse(input);
  if (r.success) return {};
  return Object.fromEntries(r.error.issues.map((i) => [i.path.join('.'), i.message]));
}

describe('AnalysisSchema', () => {
  it('parses the example of issue 8 and fills the defaults', () => {
    const a = AnalysisSchema.parse(example);
    expect(a.provider.prometheus!.server).toBe('default');
    expect(a.timeout).toBe('30s');
    expect(
      AnalysisSchema.parse({
        name: 'one',
        provider: { prometheus: { query: 'up' } },
        successCondition: 'result == 1.0',
      }),
    ).toMatchObject({
      count: 1,
      failureLimit: 0,
      inconclusiveLimit: 0,
      consecutiveErrorLimit: 4,
    });
  });

  it('parsing twice gives the same analysis (the worker parses what the workflow passes)', () => {
    const once = AnalysisSchema.parse(example);
    expect(AnalysisSchema.parse(once)).toEqual(once);
  });

  it.each<[string, unknown, string, RegExp]>([
    [
      'a condition that does not parse',
      { ...example, successCondition: 'result <' },
      'successCondition',
      /not a valid CEL expression/,
    ],
    [
      'an unknown identifier',
      { ...example, failureCondition: 'reslt >= 0.2' },
      'failureCondition',
      /Unknown variable: reslt/,
    ],
    [
      'a condition that is not boolean',
      { ...example, successCondition: '1 + 2' },
      'successCondition',
      /must be a boolean expression/,
    ],
    ['a type error', { ...example, successCondition: '"a" < 1' }, 'successCondition', /does not type-check/],
    [
      'no condition at all',
      { ...example, successCondition: undefined, failureCondition: undefined },
      'successCondition',
      /needs a successCondition/,
    ],
    [
      'an unknown template variable',
      { ...example, provider: { prometheus: { query: 'x{a="{{apps}}"}' } } },
      'provider.prometheus.query',
      /unknown template variable \{\{apps\}\}/,
    ],
    [
      'a stray {{',
      { ...example, provider: { prometheus: { query: 'x{a="{{app"}' } } },
      'provider.prometheus.query',
      /not a template variable/,
    ],
    [
      'an address in the request',
      { ...example, provider: { prometheus: { query: 'up', address: 'http://p:9090' } } },
      'provider.prometheus',
      /address/,
    ],
    [
      'two providers',
      { ...example, provider: { prometheus: { query: 'up' }, web: { url: 'http://m/x' } } },
      'provider',
      /exactly one provider/,
    ],
    ['no provider', { ...example, provider: {} }, 'provider', /exactly one provider/],
    [
      'count > 1 without interval',
      { ...example, interval: undefined },
      'interval',
      /required when count is more than 1/,
    ],
    ['an interval of 0s', { ...example, interval: '0s' }, 'interval', /at least 1s/],
    ['an interval of 2h', { ...example, interval: '2h' }, 'interval', /at most 1h/],
    [
      'a failureLimit that can never be crossed',
      { ...example, failureLimit: 5 },
      'failureLimit',
      /must be less than count \(5\)/,
    ],
    [
      'an inconclusiveLimit that lets no data pass',
      { ...example, inconclusiveLimit: 5 },
      'inconclusiveLimit',
      /without any data would pass/,
    ],
    ['a run longer than 24h', { ...example, interval: '1h', count: 26 }, 'count', /at most 24h/],
    ['a negative limit', { ...example, consecutiveErrorLimit: -1 }, 'consecutiveErrorLimit', /0/],
    ['a name that is no label', { ...example, name: 'Error Rate' }, 'name', /RFC 1123/],
    ['an unknown field', { ...example, dryRun: true }, '', /dryRun/],
  ])('refuses %s, naming the field', (_, input, field, message) => {
    const got = issues(input);
    expect(Object.keys(got)).toContain(field);
    expect(got[field]).toMatch(message);
  });

  describe('web provider', () => {
    const web = (w: Record<string, unknown>) => ({
      ...example,
      provider: { web: { url: 'https://metrics.example.com/api/ratio?app={{app}}', ...w } },
    });

    it('takes a URL, plain headers, a JSONPath and a credentials name', () => {
      const a = AnalysisSchema.parse(
        web({
          headers: { 'X-Tenant': '{{namespace}}' },
          jsonPath: '$.data.ratio',
          credentials: 'metrics-api',
        }),
      );
      expect(a.provider.web).toMatchObject({
        method: 'GET',
        jsonPath: '$.data.ratio',
        credentials: 'metrics-api',
      });
      expect(AnalysisSchema.parse(web({})).provider.web!.jsonPath).toBe('$');
    });

    it.each<[string, Record<string, unknown>, string, RegExp]>([
      [
        'a secret header',
        { headers: { Authorization: 'Bearer x' } },
        'provider.web.headers.Authorization',
        /secret header/,
      ],
      ['a cookie', { headers: { cookie: 'a=b' } }, 'provider.web.headers.cookie', /secret header/],
      [
        'credentials in the URL',
        { url: 'https://u:p@metrics.example.com/x' },
        'provider.web.url',
        /must not hold credentials/,
      ],
      [
        'a token in the query',
        { url: 'https://metrics.example.com/x?access_token=abc' },
        'provider.web.url',
        /secret query parameter "access_token"/,
      ],
      ['another scheme', { url: 'file:///etc/passwd' }, 'provider.web.url', /http/],
      ['a relative URL', { url: '/api/x' }, 'provider.web.url', /absolute/],
      ['a JSONPath that does not parse', { jsonPath: '$.data[' }, 'provider.web.jsonPath', /RFC 9535/],
      ['a JSONPath without $', { jsonPath: 'data.ratio' }, 'provider.web.jsonPath', /RFC 9535/],
      ['a body on GET', { body: '{}' }, 'provider.web.body', /needs method POST/],
      [
        'an unknown template variable in a header',
        { headers: { 'X-A': '{{tenant}}' } },
        'provider.web.headers.X-A',
        /unknown template variable/,
      ],
    ])('refuses %s', (_, w, field, message) => {
      const got = issues(web(w));
      expect(Object.keys(got)).toContain(field);
      expect(got[field]).toMatch(message);
    });
  });

  it('AnalysesSchema refuses two analyses of one name', () => {
    const r = AnalysesSchema.safeParse([example, example]);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({
      path: [1, 'name'],
      message: 'duplicate analysis name "error-rate"',
    });
  });
});

describe('templates', () => {
  const vars = {
    app: 'web',
    namespace: 'shop',
    version: 'v2.1',
    cluster: 'beijing',
    canary: 'web-canary',
    stable: 'web',
  };

  it('fills every known variable, with or without spaces in the braces', () => {
    expect(fillTemplate('{{app}}/{{ namespace }}:{{version}}@{{cluster}} {{canary}} {{stable}}', vars)).toBe(
      'web/shop:v2.1@beijing web-canary web',
    );
    expect(templateVars('{{app}} {{app}} {{ version }}')).toEqual(['app', 'version']);
  });

  it('encodes values for a URL when asked', () => {
    expect(fillTemplate('http://m/x?v={{version}}', { version: 'sha256:ab+c' }, encodeURIComponent)).toBe(
      'http://m/x?v=sha256%3Aab%2Bc',
    );
  });

  it('refuses a variable without a value, and values that could break out of a PromQL string', () => {
    expect(() => fillTemplate('{{region}}', vars)).toThrow(/no value for \{\{region\}\}/);
    for (const bad of ['a"b', 'a}b', 'a b', 'a,b', '', 'a\\b', 'x'.repeat(256)])
      expect(() => fillTemplate('x{app="{{app}}"}', { app: bad })).toThrow(TemplateError);
  });

  it('every known variable is accepted, anything else refused', () => {
    for (const v of AnalysisVarNames) expect(templateProblems(`{{${v}}}`)).toEqual([]);
    fc.assert(
      fc.property(fc.stringMatching(/^[a-zA-Z.]{1,12}$/), (name) => {
        const known = (AnalysisVarNames as readonly string[]).includes(name);
        expect(templateProblems(`q{a="{{${name}}}"}`).length === 0).toBe(known);
      }),
    );
  });

  it('a filled template has no placeholder left and holds each value verbatim', () => {
    const value = fc.stringMatching(/^[A-Za-z0-9._:@/+-]{1,40}$/);
    fc.assert(
      fc.property(value, value, (app, version) => {
        const out = fillTemplate('sum(x{app="{{app}}",version="{{ version }}"})', { app, version });
        expect(out).toBe(`sum(x{app="${app}",version="${version}"})`);
        expect(out).not.toContain('{{');
      }),
    );
  });
});

describe('conditions', () => {
  const judgeWith = (success: string | undefined, failure: string | undefined, result: unknown) =>
    judge(
      { successCondition: success, failureCondition: failure },
      { result, values: Array.isArray(result) ? result : [result] },
    );

  it.each<[string, unknown, boolean]>([
    ['result < 0.05', 0.01, true],
    ['result < 0.05', 0.05, false],
    ['result >= 1', 5, true], // an int literal against a double
    ['result[0] < 0.05', [0.01, 0.9], true],
    ['result.all(x, x < 0.05)', [0.01, 0.02], true],
    ['values.exists(x, x > 0.5)', [0.1, 0.9], true],
    ['size(values) == 2', [0.1, 0.9], true],
    ['result.data.ratio < 0.5', { data: { ratio: 0.2 } }, true],
    ['result.status == "ok"', { status: 'ok' }, true],
    ['double(result) > 0.2', '0.25', true],
    ['result < 0.05', NaN, false],
    ['result > 1e9', Infinity, true],
    ['result == true', true, true],
  ])('%s on %j is %s', (expr, result, want) => {
    expect(compileCondition(expr)({ result, values: Array.isArray(result) ? result : [result] })).toBe(want);
  });

  it('a condition that errors on this value is an Error measurement, naming the condition and the value', () => {
    const j = judgeWith('result < 0.05', undefined, [0.1, 0.2]);
    expect(j.phase).toBe('Error');
    expect(j.message).toMatch(/^successCondition "result < 0.05" on result \[0.1, 0.2\]: /);
    expect(judgeWith('result.data.ratio < 1.0', undefined, { data: {} }).phase).toBe('Error');
    expect(judgeWith(undefined, 'result', 3).message).toMatch(/gave 3 .* not true or false/);
    // CEL does not mix a double and an int in arithmetic; the type check cannot see it (result is dyn).
    expect(judgeWith('result * 100 < 5', undefined, 0.01).phase).toBe('Error');
    expect(judgeWith('result * 100.0 < 5.0', undefined, 0.01).phase).toBe('Successful');
  });

  it('no data is Inconclusive without running a condition', () => {
    expect(
      judge({ successCondition: 'result[5] < 1.0' }, { noData: 'the query returned an empty vector' }),
    ).toEqual({
      phase: 'Inconclusive',
      message: 'no data: the query returned an empty vector',
    });
  });

  it('never runs code: JavaScript is not CEL', () => {
    for (const js of [
      'process.exit(1)',
      'constructor.constructor("return 1")()',
      'result.__proto__ == null',
      '`${1}`',
      'this',
    ])
      expect(() => {
        const c = compileCondition(js);
        c({ result: {}, values: [] });
      }).toThrow();
  });

  it('refuses a condition past the size limits', () => {
    expect(
      issues({
        ...example,
        successCondition: Array.from({ length: 200 }, () => 'result < 1.0').join(' && '),
      }),
    ).toHaveProperty('successCondition');
    expect(
      issues({ ...example, successCondition: `${'('.repeat(40)}result < 1.0${')'.repeat(40)}` }),
    ).toHaveProperty('successCondition');
  });
});
