import { z } from 'zod';

/** RFC 1123 label, as Kubernetes wants for names and namespaces. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 label (a-z, 0-9, -)');

/** Go-style duration: "90s", "2m", "1h30m", "500ms". */
export const durationString = z
  .string()
  .regex(/^(\d+(ms|s|m|h))+$/, 'must be a duration such as "30s", "2m" or "1h30m"');

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function durationMs(d: string): number {
  let total = 0;
  for (const m of d.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * (unitMs[m[2]!] ?? 0);
  return total;
}

export const labelMap = z.record(z.string().min(1).max(317), z.string().max(63));
