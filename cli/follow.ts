/**
 * --wait and --watch: follows a delivery until it reaches its goal (or fails,
 * or waits for an SRE with --fail-on-pause, or --timeout passes), drawing the
 * progress as it goes, and answers the exit code.
 *
 * On a terminal the frame is redrawn in place (log-update), the clock ticking
 * every second; anywhere else (CI logs, pipes) one plain line per change. With
 * --output json the progress goes to stderr and the final status, as the API
 * gives it, to stdout.
 */
import { styleText } from 'node:util';
import type { ApiClient } from './client.ts';
import { changeLines, finalLines, formatElapsed, frame, outcome, plainStyle, stamp, type Style, type WaitGoal } from './progress.ts';
import { ExitCode, type StatusView } from './types.ts';
import { watchDelivery } from './watch.ts';

export interface Out {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

export interface FollowOptions extends WaitGoal {
  json: boolean;
  timeoutMs?: number;
  /** Poll instead of trying the event stream. */
  poll?: boolean;
  pollMs?: number;
  signal?: AbortSignal;
  /** The status the caller has printed already (an action's answer): only what changes after it is shown. */
  initial?: StatusView;
}

export function styleFor(stream: Out, env: Readonly<Record<string, string | undefined>>): Style {
  if (!stream.isTTY || env.NO_COLOR || env.TERM === 'dumb') return plainStyle;
  return (format, text) => styleText(format, text, { validateStream: false });
}

export async function follow(client: ApiClient, id: string, io: { stdout: Out; stderr: Out; env: Readonly<Record<string, string | undefined>> }, opts: FollowOptions): Promise<ExitCode> {
  const progressOut = opts.json ? io.stderr : io.stdout;
  const tty = Boolean(progressOut.isTTY) && io.env.TERM !== 'dumb';
  const style = styleFor(progressOut, io.env);
  const t0 = Date.now();
  const timeout = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
  const signals = [opts.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
  const signal = signals.length ? AbortSignal.any(signals) : undefined;
  // Loaded only for a terminal: a CI run does not pay for it.
  const live = tty ? (await import('log-update')).createLogUpdate(progressOut as NodeJS.WriteStream) : undefined;
  let last: StatusView | undefined = opts.initial;
  const draw = () => last && live?.(frame(last, { elapsedMs: Date.now() - t0, columns: progressOut.columns ?? 100, style }));
  const tick = live ? setInterval(draw, 1000) : undefined;
  const say = (line: string) => {
    if (live) live.persist(line);
    else progressOut.write(`${line}\n`);
  };

  let code: ExitCode | undefined;
  try {
    for await (const { status } of watchDelivery(client, id, {
      events: !opts.poll,
      ...(opts.pollMs ? { pollMs: opts.pollMs } : {}),
      ...(signal ? { signal } : {}),
      note: (line) => (live ? live.persist(style('dim', line)) : io.stderr.write(`${line}\n`)),
    })) {
      if (live) {
        last = status;
        draw();
      } else {
        for (const line of changeLines(last, status, style)) progressOut.write(`${stamp(Date.now() - t0)}${line}\n`);
        last = status;
      }
      code = outcome(status, opts);
      if (code !== undefined) break;
    }
  } catch (e) {
    if (timeout?.aborted && !opts.signal?.aborted) {
      code = ExitCode.timeout;
    } else if (opts.signal?.aborted) {
      code = ExitCode.interrupted;
    } else throw e;
  } finally {
    if (tick) clearInterval(tick);
    if (live) {
      draw();
      live.done();
    }
  }
  if (!last) return code ?? ExitCode.error;
  if (code === ExitCode.timeout) {
    say(`timed out after ${formatElapsed(Date.now() - t0)}: delivery ${id} is still ${last.phase} (it goes on; \`flotilla status ${id} --watch\` follows it)`);
  } else if (code === ExitCode.interrupted) {
    say(`stopped following delivery ${id} while ${last.phase}; the delivery goes on`);
  } else {
    for (const line of finalLines(last, style)) progressOut.write(`${line}\n`);
  }
  if (opts.json) io.stdout.write(`${JSON.stringify(last, null, 2)}\n`);
  return code ?? ExitCode.ok;
}
