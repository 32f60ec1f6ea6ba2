/**
 * A delivery's statuses as they change, for --watch and --wait.
 *
 * The event stream first: `GET /v1/deliveries/{id}/events` (server-sent
 * events). The contract the CLI reads:
 *   - `event: status` (or no event name) with `data:` a whole status, the same
 *     JSON as GET /v1/deliveries/{id}; the current status first on connect;
 *   - an `id:` on each event, sent back as Last-Event-ID on a reconnect;
 *   - any other event name (a finer-grained change) makes the CLI read the
 *     status once with GET, so the server may send deltas without breaking it;
 *   - `event: end`, or the stream closing after a terminal phase, ends it.
 * A stream cut short is reconnected after the server's `retry:` (1 s by
 * default) with Last-Event-ID; after 5 failed reconnects in a row, or when
 * the route is not served (404, 405, 406, 501) or answers something else than
 * text/event-stream, the CLI polls GET /v1/deliveries/{id} every second
 * instead (what works today). While polling, an API that does not answer (or
 * answers 502/503/504) is tried again for up to a minute before giving up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, fromAnswer, type ApiClient } from './client.ts';
import { isStatus, isTerminal, type StatusView } from './types.ts';

export interface WatchOptions {
  /** Poll interval (ms) when there is no event stream. */
  pollMs?: number;
  /** Try the event stream first (default true). */
  events?: boolean;
  /** How long the API may be unreachable in a row before the watch gives up (ms). */
  unreachableForMs?: number;
  signal?: AbortSignal;
  /** Notes for the user (stderr): polling instead of events, the API away for a while. */
  note?: (line: string) => void;
}

export type Via = 'events' | 'poll';
export interface Update {
  status: StatusView;
  via: Via;
}

const notServed = new Set([404, 405, 406, 501]);
const transient = (e: unknown): boolean => e instanceof ApiError && (e.status === 0 || [502, 503, 504].includes(e.status));

export async function getStatus(client: ApiClient, id: string, signal?: AbortSignal): Promise<StatusView> {
  const { body } = await client.request<unknown>('GET', `/v1/deliveries/${encodeURIComponent(id)}`, signal ? { signal } : {});
  if (!isStatus(body)) throw new ApiError(200, 'UnexpectedAnswer', `GET /v1/deliveries/${id} answered something that is not a delivery status`, [], undefined, 'GET');
  return body;
}

/** Yields the delivery's status each time it changes (the first one at once) until it is terminal or the caller stops. */
export async function* watchDelivery(client: ApiClient, id: string, opts: WatchOptions = {}): AsyncGenerator<Update> {
  const note = opts.note ?? (() => {});
  let last = '';
  const fresh = (s: StatusView): boolean => {
    const key = JSON.stringify(s);
    if (key === last) return false;
    last = key;
    return true;
  };

  const first = await getStatus(client, id, opts.signal);
  fresh(first);
  yield { status: first, via: 'poll' };
  if (isTerminal(first.phase)) return;

  if (opts.events ?? true) {
    const stream = eventStream(client, id, opts);
    for await (const s of stream) {
      if (s === 'fallback') break;
      if (fresh(s)) yield { status: s, via: 'events' };
      if (isTerminal(s.phase)) return;
    }
  }

  const pollMs = opts.pollMs ?? 1000;
  const patience = opts.unreachableForMs ?? 60_000;
  let awaySince: number | undefined;
  let current: StatusView;
  for (;;) {
    await sleep(pollMs, undefined, opts.signal ? { signal: opts.signal } : {});
    try {
      current = await getStatus(client, id, opts.signal);
    } catch (e) {
      if (!transient(e)) throw e;
      awaySince ??= Date.now();
      if (Date.now() - awaySince > patience) throw e;
      const err = e as ApiError;
      if (Date.now() - awaySince < pollMs * 1.5) note(`note: ${err.status ? `the API answered ${err.status} ${err.code}: ` : ''}${err.message}; trying again for up to ${Math.round(patience / 1000)}s`);
      continue;
    }
    awaySince = undefined;
    if (fresh(current)) yield { status: current, via: 'poll' };
    if (isTerminal(current.phase)) return;
  }
}

/** Statuses from the event stream, or 'fallback' once polling should take over. */
async function* eventStream(client: ApiClient, id: string, opts: WatchOptions): AsyncGenerator<StatusView | 'fallback'> {
  const note = opts.note ?? (() => {});
  const path = `/v1/deliveries/${encodeURIComponent(id)}/events`;
  let lastEventId: string | undefined;
  let retryMs = 1000;
  let failures = 0;
  let terminal = false;
  for (;;) {
    const ctrl = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, ctrl.signal]) : ctrl.signal;
    try {
      let res: Response;
      try {
        res = await client.stream(path, { signal, ...(lastEventId ? { lastEventId } : {}) });
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        if (++failures > 5) {
          note(`note: the event stream dropped and did not come back (${(e as Error).message}); polling every ${(opts.pollMs ?? 1000) / 1000}s`);
          yield 'fallback';
          return;
        }
        await sleep(retryMs, undefined, opts.signal ? { signal: opts.signal } : {});
        continue;
      }
      const type = res.headers.get('content-type') ?? '';
      if (notServed.has(res.status) || (res.ok && !type.startsWith('text/event-stream'))) {
        await res.body?.cancel();
        note(`note: this API has no event stream for deliveries (${res.status}); polling every ${(opts.pollMs ?? 1000) / 1000}s`);
        yield 'fallback';
        return;
      }
      if (!res.ok) {
        const text = await res.text();
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        const err = fromAnswer(res.status, body, text, `GET ${path}`, res.headers);
        if (!transient(err) || ++failures > 5) throw err;
        await sleep(retryMs, undefined, opts.signal ? { signal: opts.signal } : {});
        continue;
      }
      failures = 0;
      const { EventSourceParserStream } = await import('eventsource-parser/stream');
      const events = res
        .body!.pipeThrough(new TextDecoderStream())
        .pipeThrough(new EventSourceParserStream({ onRetry: (ms) => (retryMs = ms) }));
      for await (const ev of events) {
        if (ev.id) lastEventId = ev.id;
        let status: StatusView | undefined;
        if (ev.event === undefined || ev.event === 'status' || ev.event === 'message') {
          try {
            const data: unknown = JSON.parse(ev.data);
            if (isStatus(data)) status = data;
          } catch {
            // not a status: read it below
          }
        }
        if (ev.event === 'end' || !status) status = await getStatus(client, id, signal);
        yield status;
        terminal = isTerminal(status.phase);
        if (terminal || ev.event === 'end') return;
      }
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (e instanceof ApiError) throw e;
      // The stream broke off mid-way: reconnect below.
    } finally {
      ctrl.abort();
    }
    if (terminal) return;
    await sleep(retryMs, undefined, opts.signal ? { signal: opts.signal } : {});
  }
}
