/**
 * Prometheus over its HTTP API: one instant query (POST /api/v1/query, form
 * encoded, `time` = the measurement's instant, `timeout` = the analysis'
 * timeout) on a server of the worker's configuration.
 *
 *   scalar                      result = the number
 *   vector of one sample        result = its number
 *   vector of several samples   result = the list of their numbers (in Prometheus' order)
 *   `values`                    always the list
 *   empty vector                no data -> the measurement is Inconclusive (see model/analysis.ts judge)
 *   NaN (0/0: a ratio of rates with no requests), every sample NaN
 *                               no data, likewise
 *   matrix, string              AnalysisQueryInvalid (a range vector: use an instant query)
 *   status "error" (HTTP 400 bad_data, 422 execution)
 *                               AnalysisQueryInvalid with Prometheus' own message
 *
 * Sample values: "NaN", "+Inf", "-Inf" become NaN and the infinities.
 */
import { readFileSync } from 'node:fs';
import { AnalysisFailure } from '../../model/analysis.ts';
import type { PrometheusServer } from './config.ts';
import { agentFor, analysisFailure, call, parseJson, where } from './http.ts';
import type { Provider, ProviderAnswer } from './types.ts';

interface PromSample {
  metric?: Record<string, string>;
  value?: [number, string];
}
interface PromResponse {
  status?: string;
  errorType?: string;
  error?: string;
  warnings?: string[];
  data?: { resultType?: string; result?: unknown };
}

export function sampleValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const n = Number(s);
  return Number.isNaN(n) ? NaN : n;
}

const labelsOf = (m: Record<string, string> | undefined) =>
  `{${Object.entries(m ?? {})
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;

/** Turns a successful query's data into what the conditions see. */
export function measuredFromData(data: PromResponse['data'], subject: string): ProviderAnswer {
  const type = data?.resultType;
  if (type === 'scalar') {
    const [, s] = (data?.result as [number, string]) ?? [0, 'NaN'];
    const v = sampleValue(s);
    const raw = `scalar ${s}`;
    if (Number.isNaN(v))
      return { value: { noData: 'the query answered NaN (a ratio of rates with no requests?)' }, raw };
    return { value: { result: v, values: [v] }, raw };
  }
  if (type === 'vector') {
    const samples = (data?.result as PromSample[]) ?? [];
    const values = samples.map((s) => sampleValue(s.value?.[1] ?? 'NaN'));
    const shown = samples.slice(0, 10).map((s) => `${labelsOf(s.metric)} ${s.value?.[1]}`);
    const raw = `vector of ${samples.length}${shown.length ? `: ${shown.join('; ')}` : ''}${samples.length > 10 ? '; ...' : ''}`;
    if (values.length === 0)
      return { value: { noData: 'the query returned an empty vector (no series matched)' }, raw };
    if (values.every((v) => Number.isNaN(v)))
      return { value: { noData: `every sample is NaN (a ratio of rates with no requests?)` }, raw };
    return { value: { result: values.length === 1 ? values[0] : values, values }, raw };
  }
  if (type === 'matrix')
    throw analysisFailure(
      AnalysisFailure.AnalysisQueryInvalid,
      `${subject}: the query returned a range vector (matrix); analyses take an instant vector or a scalar (wrap the range in a function such as rate() or last_over_time())`,
    );
  throw analysisFailure(
    AnalysisFailure.AnalysisQueryInvalid,
    `${subject}: the query returned a ${type ?? 'result of no type'}; analyses take an instant vector or a scalar`,
  );
}

export function prometheusProvider(
  server: PrometheusServer,
  name: string,
  query: string,
  maxBytes: number,
): Provider {
  const base = server.url.endsWith('/') ? server.url : `${server.url}/`;
  const url = new URL('api/v1/query', base).toString();
  const subject = `Prometheus "${name}" (${where(server.url)})`;
  return {
    asked: query,
    async measure({ at, timeoutMs, signal }) {
      const headers: Record<string, string> = {
        ...server.headers,
        accept: 'application/json',
        'content-type': 'application/x-www-form-urlencoded',
        'user-agent': 'flotilla-analysis/0.1',
      };
      if (server.bearerToken) headers.authorization = `Bearer ${server.bearerToken}`;
      if (server.bearerTokenFile) {
        let token: string;
        try {
          token = readFileSync(server.bearerTokenFile, 'utf8').trim();
        } catch (err) {
          throw analysisFailure(
            AnalysisFailure.AnalysisConfigInvalid,
            `${subject}: cannot read its bearerTokenFile: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
        headers.authorization = `Bearer ${token}`;
      }
      if (server.basicAuth)
        headers.authorization = `Basic ${Buffer.from(`${server.basicAuth.username}:${server.basicAuth.password}`).toString('base64')}`;
      const body = new URLSearchParams({
        query,
        time: (at / 1000).toFixed(3),
        // Prometheus stops the query itself a little before we give up on the answer.
        timeout: `${Math.max(1, Math.floor((timeoutMs * 0.9) / 1000))}s`,
      }).toString();
      const answer = await call({
        provider: `Prometheus "${name}"`,
        method: 'POST',
        url,
        headers,
        body,
        timeoutMs,
        maxBytes,
        ...(signal ? { signal } : {}),
        dispatcher: agentFor(server.tls),
      });
      const doc = parseJson(answer, subject) as PromResponse;
      if (doc?.status !== 'success') {
        // Prometheus: 400 bad_data (parse errors), 422 execution; the type and message say which.
        const said =
          [doc?.errorType, doc?.error].filter(Boolean).join(': ') || answer.text.trim().slice(0, 200);
        throw analysisFailure(
          AnalysisFailure.AnalysisQueryInvalid,
          `${subject} refused the query (HTTP ${answer.status}): ${said}`,
          {
            httpStatus: answer.status,
            ...(doc?.errorType ? { errorType: doc.errorType } : {}),
          },
        );
      }
      const out = measuredFromData(doc.data, subject);
      if (doc.warnings?.length) out.raw += ` (warnings: ${doc.warnings.join('; ').slice(0, 300)})`;
      return out;
    },
  };
}
