/**
 * Webhook sinks, from the worker's configuration (a YAML or JSON file; the
 * worker names it, e.g. FLOTILLA_NOTIFY_CONFIG):
 *
 *   sinks:
 *     - name: release-bot
 *       url: https://hooks.example/flotilla          # or {env: NAME} / {file: path}
 *       secret: {env: FLOTILLA_WEBHOOK_SECRET}       # or {file: /run/secrets/webhook}
 *       events: [gate.waiting, gate.reminder, delivery.failed]   # default: every event
 *       format: flotilla                             # or slack: {text, blocks}
 *       timeout: 10s
 *
 * Secrets (and URLs that are secrets, as Slack's incoming webhooks are) stay
 * on the worker: the configuration names where to read them, the activity
 * reads them when it sends. Nothing of a sink but its name travels through a
 * workflow or its history; logs and failures name the sink and its URL's
 * origin, never its path or secret.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { eventTypes, type EventType } from './events.ts';

export const SecretRefSchema = z.union([
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);
export type SecretRef = z.infer<typeof SecretRefSchema>;

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const durationMs = z
  .string()
  .regex(/^\d+(ms|s)$/, 'must be a duration such as 500ms or 10s')
  .transform((d) => (d.endsWith('ms') ? Number(d.slice(0, -2)) : Number(d.slice(0, -1)) * 1000))
  .refine((ms) => ms >= 100 && ms <= 60_000, 'must be between 100ms and 60s');

export const NotifyFormat = { flotilla: 'flotilla', slack: 'slack' } as const;
export type NotifyFormat = (typeof NotifyFormat)[keyof typeof NotifyFormat];

export const SinkSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase name (a-z, 0-9, -)').max(63),
    url: z.union([httpUrl, SecretRefSchema]),
    secret: SecretRefSchema,
    events: z.array(z.union([z.enum(eventTypes), z.literal('*')])).min(1).default(['*']),
    format: z.enum(['flotilla', 'slack']).default('flotilla'),
    timeout: durationMs.default(10_000),
  })
  .strict();
export type Sink = z.output<typeof SinkSchema>;

export const NotifyConfigSchema = z
  .object({ sinks: z.array(SinkSchema).default([]) })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.sinks.forEach((s, i) => {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: ['sinks', i, 'name'], message: `sink name "${s.name}" is used twice` });
      seen.add(s.name);
    });
  });
export type NotifyConfig = z.output<typeof NotifyConfigSchema>;

export class NotifyConfigError extends Error {
  override name = 'NotifyConfigError';
}

export function parseNotifyConfig(raw: unknown, source = 'notify config'): NotifyConfig {
  const r = NotifyConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new NotifyConfigError(`${source}: ${issues.join('; ')}`);
  }
  return r.data;
}

/** Reads and checks a sinks file; every secret it references must be readable now (a worker fails at start, not at the first event). */
export function loadNotifyConfig(file: string, env: Readonly<Record<string, string | undefined>> = process.env): NotifyConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new NotifyConfigError(`${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  const config = parseNotifyConfig(raw, file);
  for (const sink of config.sinks) {
    resolveSecret(sink.secret, env, `sink ${sink.name}: secret`);
    sinkUrl(sink, env);
  }
  return config;
}

export function subscribed(sink: Sink, type: EventType): boolean {
  return sink.events.includes('*') || (sink.events as string[]).includes(type);
}

/** The secret's value, read now (a rotated file is picked up at the next send). */
export function resolveSecret(ref: SecretRef, env: Readonly<Record<string, string | undefined>>, what: string): string {
  let value: string | undefined;
  if ('env' in ref) {
    value = env[ref.env];
    if (!value) throw new NotifyConfigError(`${what}: environment variable ${ref.env} is not set`);
  } else {
    try {
      value = readFileSync(ref.file, 'utf8').trim();
    } catch (e) {
      throw new NotifyConfigError(`${what}: cannot read ${ref.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!value) throw new NotifyConfigError(`${what}: ${ref.file} is empty`);
  }
  return value;
}

export function sinkUrl(sink: Sink, env: Readonly<Record<string, string | undefined>>): URL {
  const value = typeof sink.url === 'string' ? sink.url : resolveSecret(sink.url, env, `sink ${sink.name}: url`);
  const r = httpUrl.safeParse(value);
  // The value may be secret: the message never repeats it.
  if (!r.success) throw new NotifyConfigError(`sink ${sink.name}: url must be an http(s) URL`);
  return new URL(r.data);
}

/** What logs and failures may say about a sink: its name and its URL's origin. */
export function describeSink(sink: Sink, url?: URL): string {
  return url ? `${sink.name} (${url.origin})` : sink.name;
}
