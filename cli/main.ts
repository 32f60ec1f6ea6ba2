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
  cwd: process.cwd(),
  home: homedir(),
  cliRoot: path.resolve(import.meta.dirname, '..'),
  readStdin: () => readFileSync(0, 'utf8'),
  signal: interrupt.signal,
});
process.exitCode = code;
