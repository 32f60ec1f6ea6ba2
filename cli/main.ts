/**
 * `flotilla`: the command-line client of the Flotilla API (README.md beside
 * this file). Ctrl-C stops a --wait or --watch (exit 130); the delivery goes on.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { runCli } from './program.ts';

const interrupt = new AbortController();
process.once('SIGINT', () => interrupt.abort());

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  // Under `npm run cli` npm runs us in the package root; paths given are relative to where it was typed.
  cwd: process.env.npm_lifecycle_event === 'cli' && process.env.INIT_CWD ? process.env.INIT_CWD : process.cwd(),
  home: homedir(),
  cliRoot: path.resolve(import.meta.dirname, '..'),
  readStdin: () => readFileSync(0, 'utf8'),
  signal: interrupt.signal,
});
process.exitCode = code;
