/**
 * The HTTP JSON provider: GET (or POST) a URL the worker allows, parse the
 * answer as JSON, pick the value with an RFC 9535 JSONPath (jsonpath-rfc9535).
 *
 *   one match            result = that JSON value (a number, string, object, list...)
 *   several matches      result = the list of them
 *   a single null        no data -> Inconclusive
 *   no match             an Error measurement (the endpoint did not answer what the analysis expects)
 *
 * Template variables in the URL are filled URL-encoded; in headers and the
 * body as they are (their characters are limited, see model/analysis.ts).
 * Secret headers come from the worker's `web.credentials` by name.
 */
import { query as jsonPathQuery } from 'jsonpath-rfc9535';
import { AnalysisFailure, fillTemplate, type AnalysisVars } from '../../model/analysis.ts';
import type { z } from 'zod';
import type { WebProviderSchema } from '../../model/analysis.ts';
import { urlAllowed, type AnalysisConfig } from './config.ts';
import { agentFor, analysisFailure, call, parseJson, where } from './http.ts';
import { MeasurementError, type Provider } from './types.ts';

type WebProvider = z.output<typeof WebProviderSchema>;

export function webProvider(spec: WebProvider, vars: AnalysisVars, config: AnalysisConfig): Provider {
  const url = fillTemplate(spec.url, vars, encodeURIComponent);
  if (!urlAllowed(url, config.web.allowedUrls))
    throw analysisFailure(
      AnalysisFailure.AnalysisConfigInvalid,
      config.web.allowedUrls.length
        ? `web provider: ${where(url)} is not under a URL this worker allows (${config.web.allowedUrls.join(', ')})`
        : `web provider: this worker allows no URL (set FLOTILLA_ANALYSIS_WEB_ALLOWED_URLS or web.allowedUrls)`,
    );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.headers)) headers[k.toLowerCase()] = fillTemplate(v, vars);
  if (spec.credentials) {
    const cred = config.web.credentials[spec.credentials];
    if (!cred)
      throw analysisFailure(
        AnalysisFailure.AnalysisConfigInvalid,
        `web provider: this worker has no web credentials named "${spec.credentials}"`,
      );
    for (const [k, v] of Object.entries(cred.headers)) headers[k.toLowerCase()] = v;
  }
  headers.accept = 'application/json';
  headers['user-agent'] = 'flotilla-analysis/0.1';
  const body = spec.body !== undefined ? fillTemplate(spec.body, vars) : undefined;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const subject = `web ${spec.method} ${where(url)}`;
  return {
    asked: `${spec.method} ${url}`,
    async measure({ timeoutMs, signal }) {
      const answer = await call({
        provider: 'web',
        method: spec.method,
        url,
        headers,
        ...(body !== undefined ? { body } : {}),
        timeoutMs,
        maxBytes: config.maxResponseBytes,
        ...(signal ? { signal } : {}),
        dispatcher: agentFor(config.web.tls),
      });
      if (answer.status >= 400)
        throw analysisFailure(
          AnalysisFailure.AnalysisQueryInvalid,
          `${subject}: HTTP ${answer.status}: ${answer.text.trim().slice(0, 200)}`,
          {
            httpStatus: answer.status,
          },
        );
      const doc = parseJson(answer, subject);
      const raw = answer.text.trim().slice(0, 500);
      const matches = jsonPathQuery(doc as Parameters<typeof jsonPathQuery>[0], spec.jsonPath);
      if (matches.length === 0)
        throw new MeasurementError(
          `${spec.jsonPath} matched nothing in the answer of ${where(url)}: ${raw.slice(0, 200)}`,
        );
      if (matches.length === 1 && matches[0] === null)
        return { value: { noData: `${spec.jsonPath} is null` }, raw };
      const result = matches.length === 1 ? matches[0] : matches;
      return { value: { result, values: Array.isArray(result) ? result : [result] }, raw };
    },
  };
}
