/**
 * GET /v1/deliveries/{id}/events: a delivery's changes as server-sent events.
 *
 * The events live in the delivery workflow (numbered from 1, in the order it
 * made them), so the stream loses nothing and repeats nothing across
 * reconnects: a reader that sends `Last-Event-ID: N` (or `?after=N`) gets
 * exactly the events after N. A fresh connection first gets `event: status`
 * (the whole status, as GET /v1/deliveries/{id} answers, with the id of the
 * last event so far), then every event as it happens: `phase`, `step`,
 * `cluster`, `gate`, `action` and, last, `end`, after which the stream closes.
 * A comment line every 15 s keeps proxies from timing the connection out.
 */
import type { Request, Response } from 'express';
import type { Deliveries } from './deliveries.ts';
import { HttpError } from './errors.ts';

const POLL_MS = 400;
const KEEPALIVE_MS = 15_000;

function cursorOf(req: Request): number | undefined {
  const raw = req.get('last-event-id') ?? (typeof req.query.after === 'string' ? req.query.after : undefined);
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,9}$/.test(raw)) throw new HttpError(400, 'BadRequest', `Last-Event-ID (or after) must be an event id, a whole number; got "${raw.slice(0, 40)}"`, { details: [{ path: 'Last-Event-ID', message: 'a whole number' }] });
  return Number(raw);
}

export async function streamEvents(deliveries: Deliveries, req: Request, res: Response): Promise<void> {
  const id = req.params.id as string;
  const after = cursorOf(req);
  // Errors before the first byte are ordinary JSON errors (404 for an unknown delivery).
  const first = await deliveries.events(id, after ?? 0);
  let closed = false;
  res.on('close', () => (closed = true)); // the response's: a request's 'close' fires once its (empty) body is read
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.write('retry: 1000\n\n');
  const send = (eventId: number, event: string, data: unknown) => res.write(`id: ${eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

  let cursor = after ?? 0;
  let batch = first;
  if (after === undefined) {
    const { status } = await deliveries.status(id);
    cursor = first.last;
    send(cursor, 'status', status);
    batch = { ...first, events: [] };
  }
  let quietSince = Date.now();
  for (;;) {
    for (const e of batch.events) {
      send(e.id, e.type, e);
      cursor = e.id;
      if (e.type === 'end') {
        res.end();
        return;
      }
    }
    if (batch.events.length) quietSince = Date.now();
    if (closed) return void res.end();
    if (!batch.running && batch.events.length === 0 && cursor >= batch.last) {
      // Closed without an end event (terminated by hand, say): say so from its status, then stop.
      const { status } = await deliveries.status(id).catch(() => ({ status: undefined }));
      res.write(`event: end\ndata: ${JSON.stringify({ phase: status?.phase ?? 'unknown', message: status?.message ?? 'the delivery closed' })}\n\n`);
      res.end();
      return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (closed) return void res.end();
    if (Date.now() - quietSince > KEEPALIVE_MS) {
      res.write(': keep-alive\n\n');
      quietSince = Date.now();
    }
    try {
      batch = await deliveries.events(id, cursor);
    } catch {
      // The worker or Temporal away for a moment: the client reconnects with Last-Event-ID and loses nothing.
      res.end();
      return;
    }
  }
}
