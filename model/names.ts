import { z } from 'zod';

/** RFC 1123 label, as Kubernetes wants for names and namespaces. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 label (a-z, 0-9, -)');

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function durationMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * (unitMs[m[2]!] ?? 0);
  return total;
}

/** "1s", "90s", "24h" for messages. */
export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const durationRe = /^(\d+(ms|s|m|h))+$/;

/**
 * A Go-style duration ("90s", "2m", "1h30m", "1500ms") between `minMs` and `maxMs`.
 * Zero is refused rather than read as "forever": every wait in a delivery ends.
 */
export function boundedDuration(minMs: number, maxMs: number) {
  return z
    .string()
    .regex(durationRe, 'must be a duration such as "30s", "2m" or "1h30m"')
    .superRefine((d, ctx) => {
      if (!durationRe.test(d)) return; // the regex has said what is wrong
      const ms = durationMs(d);
      if (ms < minMs) ctx.addIssue({ code: 'custom', message: `must be at least ${formatMs(minMs)} (got ${d})` });
      else if (ms > maxMs) ctx.addIssue({ code: 'custom', message: `must be at most ${formatMs(maxMs)} (got ${d})` });
    });
}

/** Timeouts and graces: at least 1s, at most 24h. */
export const durationString = boundedDuration(1000, 24 * 3_600_000);

export const labelMap = z.record(z.string().min(1).max(317), z.string().max(63));
