/**
 * The made-up traffic the stack's metrics target serves (stack/metrics/main.ts):
 * one entry per application, version and cluster, with a request rate and the
 * share of them that fail. Shared by the target process and the stack's API.
 */
import { z } from 'zod';

/** A label value Prometheus and a reader can take: printable, no quotes or newlines. */
const labelValue = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^"\\\n\r\t]+$/, 'printable, without quotes, backslashes or line breaks');

export const TrafficSchema = z
  .object({
    /** `<namespace>/<name>`, as Flotilla names an application. */
    app: labelValue.regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
      'namespace/name',
    ),
    version: labelValue,
    cluster: labelValue,
    /** Requests per second, all codes together. */
    rps: z.number().min(0).max(100_000),
    /** The share of requests answered 500 (0..1); the rest are 200. */
    errorRate: z.number().min(0).max(1).default(0),
  })
  .strict();
export type Traffic = z.infer<typeof TrafficSchema>;
export type TrafficInput = z.input<typeof TrafficSchema>;

/** Which entries `clear` removes: those matching every field given (nothing given: all). */
export const TrafficFilterSchema = z
  .object({ app: labelValue.optional(), version: labelValue.optional(), cluster: labelValue.optional() })
  .strict();
export type TrafficFilter = z.infer<typeof TrafficFilterSchema>;

export const trafficKey = (t: Pick<Traffic, 'app' | 'version' | 'cluster'>) =>
  `${t.app}|${t.version}|${t.cluster}`;

export const matches = (t: Traffic, f: TrafficFilter) =>
  (!f.app || f.app === t.app) &&
  (!f.version || f.version === t.version) &&
  (!f.cluster || f.cluster === t.cluster);

/** zod issues as one line: `rps: Too big: expected number to be <=100000; app: namespace/name`. */
export const issues = (e: z.ZodError) =>
  e.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
