/**
 * The notify activity: sends one event to every sink subscribed to its type,
 * signed (sign.ts), in the sink's format. Temporal retries it (see
 * notifyActivityOptions); the activity never retries by hand.
 *
 * Failures are typed (options.ts):
 *  - NotificationFailed (retryable): a connection error or timeout, 5xx, 408
 *    or 429 (whose Retry-After becomes the next retry's delay);
 *  - NotificationRejected (non-retryable): any other answer (4xx, a
 *    redirect): retrying the same request cannot help;
 *  - InvalidNotification (non-retryable): the event does not match its schema.
 * With several sinks, those that took the event are kept in the heartbeat, so
 * a retry sends only to the ones still missing it; a sink that rejected it is
 * not tried again, and the activity fails NotificationRejected once no sink is
 * left to retry. Each request carries Flotilla-Event-Id for receivers to drop
 * repeats (a sink that answered 200 after its connection was cut may get the
 * event twice).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from 'pino';
import { describeSink, resolveSecret, sinkUrl, subscribed, type NotifyConfig, type Sink } from './config.ts';
import { NotifyFailure } from './options.ts';
import { FlotillaEventSchema, type FlotillaEvent, type FlotillaEventInput } from './events.ts';
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signatureHeader } from './sign.ts';
import { slackBody } from './slack.ts';

export interface NotifyInput {
  event: FlotillaEventInput;
}

export interface NotifyResult {
  eventId: string;
  /** Sinks that took the event (answered 2xx), in this attempt or an earlier one. */
  delivered: string[];
  /** The attempt that finished (1 when nothing had to be retried). */
  attempt: number;
}

export interface NotifyActivities {
  notify(input: NotifyInput): Promise<NotifyResult>;
}

export interface NotifyDeps {
  config: NotifyConfig;
  logger: Logger;
  /** Where `{env: NAME}` secrets are read (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The clock of the signature's timestamp (ms since the epoch). */
  now?: () => number;
  userAgent?: string;
}

/** Heartbeat details: which sinks are done with this event (took it, or refused it for good). */
interface Progress {
  delivered: string[];
  rejected: { sink: string; reason: string }[];
}

type Outcome = { kind: 'delivered' } | { kind: 'rejected'; reason: string } | { kind: 'retry'; reason: string; retryAfterMs?: number };

export function createNotifyActivities(deps: NotifyDeps): NotifyActivities {
  const env = deps.env ?? process.env;
  const now = deps.now ?? Date.now;
  const userAgent = deps.userAgent ?? 'flotilla-notify/1';

  async function send(sink: Sink, event: FlotillaEvent, signal: AbortSignal, log: Logger): Promise<Outcome> {
    let url: URL;
    let secret: string;
    try {
      url = sinkUrl(sink, env);
      secret = resolveSecret(sink.secret, env, `sink ${sink.name}: secret`);
    } catch (e) {
      // A secret file gone missing may come back (an operator fixes it): worth a retry.
      return { kind: 'retry', reason: (e as Error).message };
    }
    const body = JSON.stringify(sink.format === 'slack' ? slackBody(event) : event);
    const timestamp = Math.floor(now() / 1000);
    const who = describeSink(sink, url);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': userAgent,
          [SIGNATURE_HEADER]: signatureHeader(secret, timestamp, body),
          [EVENT_ID_HEADER]: event.id,
          [EVENT_TYPE_HEADER]: event.type,
        },
        body,
        signal: AbortSignal.any([signal, AbortSignal.timeout(sink.timeout)]),
      });
      await res.arrayBuffer().catch(() => undefined); // drain: the connection goes back to the pool
    } catch (e) {
      if (signal.aborted) throw e;
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      const reason = `${who}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${sink.timeout}ms` : (cause ?? (e as Error).message)}`;
      log.warn({ sink: sink.name, reason }, 'webhook not reached');
      return { kind: 'retry', reason };
    }
    if (res.status >= 200 && res.status < 300) {
      log.info({ sink: sink.name, status: res.status }, 'webhook delivered');
      return { kind: 'delivered' };
    }
    const reason = `${who} answered ${res.status}`;
    log.warn({ sink: sink.name, status: res.status }, 'webhook refused');
    if (res.status >= 500 || res.status === 408 || res.status === 429) {
      const retryAfterMs = retryAfter(res.headers.get('retry-after'), now());
      return { kind: 'retry', reason, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    }
    return { kind: 'rejected', reason: res.status >= 300 && res.status < 400 ? `${reason} (redirects are not followed)` : reason };
  }

  return {
    async notify({ event: input }): Promise<NotifyResult> {
      const parsed = FlotillaEventSchema.safeParse(input);
      if (!parsed.success) {
        throw ApplicationFailure.create({
          type: NotifyFailure.invalid,
          nonRetryable: true,
          message: `the event does not match its schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        });
      }
      const event = parsed.data;
      const ctx = Context.current();
      const log = deps.logger.child({ event: event.id, type: event.type, attempt: ctx.info.attempt });
      const before = ctx.info.heartbeatDetails as Progress | undefined;
      const progress: Progress = { delivered: [...(before?.delivered ?? [])], rejected: [...(before?.rejected ?? [])] };
      const done = new Set([...progress.delivered, ...progress.rejected.map((r) => r.sink)]);
      const todo = deps.config.sinks.filter((s) => subscribed(s, event.type) && !done.has(s.name));

      const retry: { reason: string; retryAfterMs?: number }[] = [];
      await Promise.all(
        todo.map(async (sink) => {
          const outcome = await send(sink, event, ctx.cancellationSignal, log);
          if (outcome.kind === 'delivered') progress.delivered.push(sink.name);
          else if (outcome.kind === 'rejected') progress.rejected.push({ sink: sink.name, reason: outcome.reason });
          else retry.push(outcome);
          ctx.heartbeat(progress);
        }),
      );
      if (retry.length > 0) {
        const delays = retry.map((r) => r.retryAfterMs).filter((d): d is number => d !== undefined);
        throw ApplicationFailure.create({
          type: NotifyFailure.failed,
          message: `event ${event.id} not delivered yet: ${retry.map((r) => r.reason).join('; ')}`,
          ...(delays.length ? { nextRetryDelay: Math.max(...delays) } : {}),
        });
      }
      if (progress.rejected.length > 0) {
        throw ApplicationFailure.create({
          type: NotifyFailure.rejected,
          nonRetryable: true,
          message: `event ${event.id} refused: ${progress.rejected.map((r) => r.reason).join('; ')}${progress.delivered.length ? ` (delivered to ${progress.delivered.join(', ')})` : ''}`,
        });
      }
      return { eventId: event.id, delivered: progress.delivered, attempt: ctx.info.attempt };
    },
  };
}

/** Retry-After in ms: seconds, or an HTTP date; capped at 10 minutes. */
function retryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - nowMs;
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 600_000) : undefined;
}
