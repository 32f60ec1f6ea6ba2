/**
 * The supervisor: starts each part of the stack as a detached process in its
 * own process group, logging to `<data>/logs/<part>.log`, and records it in
 * `<data>/state.json` so that another process (the CLI, a test's teardown) can
 * check, fault or stop it later. Stopping signals the whole group: SIGTERM,
 * then SIGKILL after a grace period.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

export interface ProcRecord {
  pid: number;
  /** The executable and arguments, to recognise the process (a pid can be reused). */
  command: string[];
  log: string;
  startedAt: string;
}

export interface StackState {
  portBase: number;
  processes: Record<string, ProcRecord>;
  /** Parts stopped on purpose by `fault ...-down`, e.g. "cluster/beijing", "registry/central". */
  faults: Record<string, string>;
  /** The fleet file of the last `up`: later commands on this data dir default to it. */
  fleetFile?: string;
}

const stateFile = (dataDir: string) => path.join(dataDir, 'state.json');

export function readState(dataDir: string): StackState | undefined {
  const file = stateFile(dataDir);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as StackState;
}

/** Read-modify-write, synchronous so that parts started in parallel never interleave their writes. */
export function updateState(dataDir: string, portBase: number, change: (s: StackState) => void): StackState {
  const state = readState(dataDir) ?? { portBase, processes: {}, faults: {} };
  change(state);
  const file = stateFile(dataDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
  return state;
}

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True when the recorded process still runs (and is the one we started, not a reused pid). */
export function isAlive(rec: ProcRecord | undefined): boolean {
  if (!rec) return false;
  const st = procState(rec.pid);
  if (!st || st === 'Z' || st === 'X') return false;
  try {
    const cmdline = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0');
    return cmdline[0] === rec.command[0] && cmdline[1] === rec.command[1];
  } catch {
    return false;
  }
}

/**
 * Proportional set size in bytes (smaps_rollup Pss): resident memory with pages
 * shared between processes (the one flotilla-kube binary mapped by four
 * components of every cluster) split among them, so PSS adds up where RSS double-counts.
 */
export function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** RSS and PSS of a recorded process, zeros when it is not running. */
export function memoryOf(rec: ProcRecord | undefined): { rssBytes: number; pssBytes: number } {
  return rec && isAlive(rec)
    ? { rssBytes: rssBytes(rec.pid), pssBytes: pssBytes(rec.pid) }
    : { rssBytes: 0, pssBytes: 0 };
}

/** Resident memory in bytes (VmRSS), or 0 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface StartSpec {
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export function logFile(dataDir: string, name: string): string {
  return path.join(dataDir, 'logs', `${name.replaceAll('/', '-')}.log`);
}

/** Spawns detached (own session and process group), appends to its log, records it. */
export function startProcess(dataDir: string, portBase: number, spec: StartSpec): ProcRecord {
  const log = logFile(dataDir, spec.name);
  mkdirSync(path.dirname(log), { recursive: true });
  const fd = openSync(log, 'a');
  writeSync(fd, `\n=== ${new Date().toISOString()} ${spec.command} ${spec.args.join(' ')}\n`);
  try {
    const child = spawn(spec.command, spec.args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: spec.cwd ?? dataDir,
      env: spec.env ?? process.env,
    });
    child.on('error', () => {}); // a failed exec shows as a dead pid and in the log
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
    const rec: ProcRecord = {
      pid: child.pid,
      command: [spec.command, ...spec.args],
      log,
      startedAt: new Date().toISOString(),
    };
    updateState(dataDir, portBase, (s) => {
      s.processes[spec.name] = rec;
    });
    return rec;
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; forgets the record. */
export async function stopProcess(
  dataDir: string,
  portBase: number,
  name: string,
  graceMs = 10_000,
): Promise<boolean> {
  const rec = readState(dataDir)?.processes[name];
  let stopped = false;
  if (rec && isAlive(rec)) {
    signalGroup(rec.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isAlive(rec) && Date.now() < deadline) await sleep(100);
    if (isAlive(rec)) {
      signalGroup(rec.pid, 'SIGKILL');
      while (isAlive(rec)) await sleep(50);
    }
    stopped = true;
  }
  updateState(dataDir, portBase, (s) => {
    delete s.processes[name];
  });
  return stopped;
}

/** The last lines of a part's log, for error messages. */
export function logTail(log: string, lines = 15): string {
  try {
    return readFileSync(log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `check` until it returns true. Fails early, with the log's tail, when the
 * process we wait for has died.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; rec?: ProcRecord; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (opts.rec && !isAlive(opts.rec))
      throw new Error(
        `${what}: process ${opts.rec.pid} exited; log ${opts.rec.log}:\n${logTail(opts.rec.log)}`,
      );
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not healthy after ${opts.timeoutMs / 1000}s${opts.rec ? `; log ${opts.rec.log}:\n${logTail(opts.rec.log)}` : ''}`,
      );
    }
    await sleep(opts.intervalMs ?? 200);
  }
}

/**
 * Runs `fn` holding `<data>/lock`, so two commands (a test run's setup and a
 * shell, say) never start or stop the same stack at once. A lock whose holder
 * died is taken over.
 */
export async function withLock<T>(dataDir: string, what: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'lock');
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      writeFileSync(file, `${process.pid} ${what}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pid, ...rest] = (existsSync(file) ? readFileSync(file, 'utf8') : '').trim().split(' ');
      const holder = Number(pid);
      if (!holder || !procState(holder) || procState(holder) === 'Z') {
        rmSync(file, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`${dataDir} is locked by pid ${holder} (${rest.join(' ')})`, { cause: err });
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}
