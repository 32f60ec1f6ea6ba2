/**
 * Helpers of the CLI's unit tests: an in-memory terminal for runCli, and a
 * real HTTP server on 127.0.0.1 that records what the CLI sends and answers
 * what the test scripts (a stand-in for the API: the CLI is what is tested;
 * the integration tests run it against the real API).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runCli, type Io } from '../../cli/program.ts';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

export interface Recorder {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

export async function recorder(handler: Handler): Promise<Recorder> {
  const requests: Recorded[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const rec: Recorded = { method: req.method!, url: req.url!, headers: req.headers, body: text ? JSON.parse(text) : undefined };
    requests.push(rec);
    try {
      await handler(rec, res);
    } catch (e) {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** runCli in this process with captured output; no config file, no stack unless the env/cwd given name them. */
export async function cli(argv: string[], opts: { env?: Record<string, string>; cwd?: string; stdin?: string; tty?: boolean; pollMs?: number } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const cwd = opts.cwd ?? '/nonexistent-cli-test';
  const io: Io = {
    stdout: { write: (s: string) => ((stdout += s), true), isTTY: opts.tty ?? false, columns: 100 },
    stderr: { write: (s: string) => ((stderr += s), true), isTTY: false },
    env: { FLOTILLA_CONFIG_FILE: '', ...opts.env },
    cwd,
    home: path.join(cwd, 'home'),
    cliRoot: path.join(cwd, 'cli-root'),
    readStdin: () => opts.stdin ?? '',
    pollMs: opts.pollMs ?? 50,
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
