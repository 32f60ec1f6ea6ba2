/**
 * The `flotilla` commands (commander). Every command resolves the connection
 * (config.ts), makes its HTTP calls (client.ts) and prints text or, with
 * `--output json`, the API's JSON. runCli answers the exit code instead of
 * exiting, so tests run it in-process as well as as a process.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ApiClient, ApiError, errorLine } from './client.ts';
import { ConfigError, Need, resolveConnection, type Connection } from './config.ts';
import { follow, styleFor, type Out } from './follow.ts';
import { appText, clustersText, listText, statusText } from './render.ts';
import { deliveryBody, DeliveryType, parseSpec, readSpec, SpecError } from './spec.ts';
import { ExitCode, isStatus, Phase, type AcceptedView, type AppView, type ListItemView, type StatusView } from './types.ts';

export interface Io {
  stdout: Out;
  stderr: Out;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  home: string;
  /** The checkout the CLI runs from. */
  cliRoot: string;
  readStdin: () => string;
  /** Aborted on Ctrl-C: a wait stops, the delivery goes on. */
  signal?: AbortSignal;
  /** Poll interval of --wait/--watch without an event stream (tests shorten it). */
  pollMs?: number;
}

interface Globals {
  api?: string;
  token?: string;
  role?: string;
  output: 'text' | 'json';
}

interface WaitFlags {
  wait?: boolean;
  watch?: boolean;
  failOnPause?: boolean;
  timeout?: number;
  poll?: boolean;
}

const durationRe = /^(\d+(ms|s|m|h))+$/;
const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** "90s", "10m", "1h30m" in ms, for --timeout. */
export function parseDuration(value: string): number {
  if (!durationRe.test(value)) throw new InvalidArgumentError('must be a duration such as 90s, 10m or 1h30m');
  let ms = 0;
  for (const m of value.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(m[1]) * unitMs[m[2]!]!;
  if (ms < 1000) throw new InvalidArgumentError('must be at least 1s');
  return ms;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

const idempotencyOption = () =>
  new Option('--idempotency-key <key>', 'key of this write: a CI job that retries with the same key gets the same delivery (default: a new one each run)');
const waitOptions = (cmd: Command, flag: '--wait' | '--watch', what: string): Command =>
  cmd
    .option(flag, what)
    .option('--fail-on-pause', 'with --wait/--watch: exit 3 when the delivery waits for an SRE (NeedsAttention) instead of waiting on')
    .addOption(new Option('--timeout <duration>', 'with --wait/--watch: give up after this long (exit 4); the delivery goes on').argParser(parseDuration))
    .option('--poll', 'poll the status every second instead of reading the event stream');

/** What a run leaves behind for runCli: its exit code and the connection it used (for error hints). */
export interface RunState {
  code: number;
  conn?: Connection;
}

export function buildProgram(io: Io, state: RunState): Command {
  const done = (code: number) => void (state.code = code);
  const program = new Command('flotilla')
    .description('Deliveries of applications to a fleet of Kubernetes clusters, through the Flotilla API')
    .option('--api <url>', 'API URL (else FLOTILLA_API_URL, the config file, or the local stack)')
    .option('--token <token>', 'bearer token (else FLOTILLA_TOKEN, the config file, or the local stack); never printed')
    .option('--role <role>', 'which of the local stack\'s tokens to use: ci, release-manager, sre, viewer (default: what the command needs)')
    .addOption(new Option('-o, --output <format>', 'text for people, json for scripts (the API\'s JSON)').choices(['text', 'json']).default('text'))
    .showHelpAfterError('(flotilla --help lists the commands; flotilla <command> --help their options)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes:
  0  done; with --wait/--watch: the delivery reached its goal (Healthy; RolledBack after rollback, Aborted after abort)
  1  usage error, bad spec, an API error (one line naming the field at fault), or the API unreachable
  2  with --wait/--watch: the delivery ended otherwise (Degraded, Aborted, RolledBack)
  3  with --fail-on-pause: the delivery waits for an SRE (NeedsAttention)
  4  --timeout passed while the delivery still ran (it goes on)
  130 interrupted (Ctrl-C); the delivery goes on

The API and token come from --api/--token, else FLOTILLA_API_URL/FLOTILLA_TOKEN, else
~/.config/flotilla/config.yaml (or FLOTILLA_CONFIG_FILE: "api: <url>", "token: <token>"),
else the local stack's .flotilla/stack.json (npm start writes it; --role picks its token).`,
    );

  const out = (line = '') => void io.stdout.write(`${line}\n`);
  const globals = (cmd: Command): Globals => cmd.optsWithGlobals<Globals>();
  const connect = (cmd: Command, need: Need): { client: ApiClient; conn: Connection } => {
    const g = globals(cmd);
    const conn = resolveConnection({
      flags: { ...(g.api ? { api: g.api } : {}), ...(g.token ? { token: g.token } : {}), ...(g.role ? { role: g.role } : {}) },
      env: io.env,
      cwd: io.cwd,
      home: io.home,
      cliRoot: io.cliRoot,
      need,
      warn: (line) => void io.stderr.write(`${line}\n`),
    });
    state.conn = conn;
    return { client: new ApiClient({ url: conn.url, ...(conn.token ? { token: conn.token } : {}) }), conn };
  };
  const json = (cmd: Command) => globals(cmd).output === 'json';
  const printJson = (v: unknown) => out(JSON.stringify(v, null, 2));

  const followUp = async (cmd: Command, client: ApiClient, id: string, flags: WaitFlags, expect: string, initial?: StatusView): Promise<number> =>
    follow(client, id, io, {
      ...(initial ? { initial } : {}),
      expect,
      failOnPause: Boolean(flags.failOnPause),
      json: json(cmd),
      ...(flags.timeout ? { timeoutMs: flags.timeout } : {}),
      ...(flags.poll ? { poll: true } : {}),
      ...(io.pollMs ? { pollMs: io.pollMs } : {}),
      ...(io.signal ? { signal: io.signal } : {}),
    });

  // --- starting deliveries ---

  const start = (name: string, type: DeliveryType, summary: string) =>
    waitOptions(
      program
        .command(name)
        .description(summary)
        .requiredOption('-f, --file <spec>', 'the delivery: the body of POST /v1/deliveries, YAML or JSON ("-" reads stdin)')
        .option('--image <ref>', 'deploy this image (overrides app.image)')
        .addOption(idempotencyOption()),
      '--wait',
      'follow the delivery to its end: exit 0 when Healthy, 2 when Degraded/Aborted/RolledBack',
    ).action(async (flags: { file: string; image?: string; idempotencyKey?: string } & WaitFlags, cmd: Command) => {
      const { text, source } = readSpec(flags.file, io.cwd, io.readStdin);
      const body = deliveryBody(parseSpec(text, source), { type, source, ...(flags.image ? { image: flags.image } : {}) });
      const { client } = connect(cmd, Need.start);
      const res = await client.request<AcceptedView>('POST', '/v1/deliveries', { body, ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}) });
      if (json(cmd) && !flags.wait) return printJson(res.body);
      if (!json(cmd)) {
        out(res.status === 200 ? `delivery ${res.body.id} was started earlier with this Idempotency-Key` : `started delivery ${res.body.id}`);
        for (const [ref, digest] of Object.entries(res.body.digests ?? {})) out(`  ${ref} pinned to ${digest}`);
        for (const u of res.body.unchecked ?? []) out(`  ${u.cluster} not checked before the start (${u.reason}); the delivery waits for it`);
      }
      if (flags.wait) done(await followUp(cmd, client, res.body.id, flags, Phase.Healthy));
    });

  start('deploy', DeliveryType.deploy, 'start a deploy delivery from a spec file');
  start('canary', DeliveryType.canary, 'start a canary delivery (the API does not serve it yet)');
  start('bluegreen', DeliveryType.blueGreen, 'start a blue-green delivery (the API does not serve it yet)');

  program
    .command('replicate')
    .description('copy an image to regional registries ahead of a delivery (POST /v1/replications)')
    .requiredOption('--image <ref>', 'the image to copy')
    .requiredOption('--to <registries>', 'comma-separated registry names, or "all"')
    .addOption(idempotencyOption())
    .action(async (flags: { image: string; to: string; idempotencyKey?: string }, cmd: Command) => {
      const to = flags.to === 'all' ? 'all' : flags.to.split(',').map((s) => s.trim()).filter(Boolean);
      if (Array.isArray(to) && to.length === 0) throw new InvalidArgumentError('--to needs registry names or "all"');
      const { client } = connect(cmd, Need.start);
      const res = await client.request<{ id?: string }>('POST', '/v1/replications', { body: { image: flags.image, to }, ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}) });
      if (json(cmd)) printJson(res.body);
      else out(`started replication ${res.body?.id ?? ''} of ${flags.image} to ${Array.isArray(to) ? to.join(', ') : 'every registry'}`.replace('  ', ' '));
    });

  // --- reading ---

  waitOptions(
    program.command('status').description('the status of a delivery: phase, waves, each cluster, conditions, audit').argument('<id>', 'delivery id'),
    '--watch',
    'follow it live until it ends (exit codes as deploy --wait)',
  ).action(async (id: string, flags: WaitFlags, cmd: Command) => {
    const { client } = connect(cmd, Need.read);
    if (flags.watch) return done(await followUp(cmd, client, id, flags, Phase.Healthy));
    const { body } = await client.request<StatusView>('GET', `/v1/deliveries/${encodeURIComponent(id)}`);
    if (json(cmd)) return printJson(body);
    for (const line of statusText(body, styleFor(io.stdout, io.env))) out(line);
  });

  program
    .command('list')
    .description('deliveries, newest first')
    .option('--app <app>', '"<namespace>/<name>" or "<name>" (namespace default)')
    .option('--phase <phase>', `only this phase: ${Object.values(Phase).join(', ')}`)
    .option('--limit <n>', 'at most this many', positiveInt)
    .action(async (flags: { app?: string; phase?: string; limit?: number }, cmd: Command) => {
      const { client } = connect(cmd, Need.read);
      const { body } = await client.request<{ items: ListItemView[] }>('GET', '/v1/deliveries', { query: { app: flags.app, phase: flags.phase, limit: flags.limit } });
      if (json(cmd)) return printJson(body);
      for (const line of listText(body.items ?? [])) out(line);
    });

  program
    .command('app')
    .description('where an application runs: image, replicas and revision per cluster; its active and recent deliveries')
    .argument('<name>', 'application name')
    .option('-n, --namespace <ns>', 'Kubernetes namespace', 'default')
    .action(async (name: string, flags: { namespace: string }, cmd: Command) => {
      const { client } = connect(cmd, Need.read);
      const { body } = await client.request<AppView>('GET', `/v1/apps/${encodeURIComponent(name)}`, { query: { namespace: flags.namespace } });
      if (json(cmd)) return printJson(body);
      for (const line of appText(body)) out(line);
    });

  program
    .command('clusters')
    .description('the fleet: each cluster, its health since when, the last probe, drain and failover (GET /v1/clusters)')
    .action(async (_flags: unknown, cmd: Command) => {
      const { client } = connect(cmd, Need.read);
      const { body } = await client.request<unknown>('GET', '/v1/clusters');
      if (json(cmd)) return printJson(body);
      for (const line of clustersText(body)) out(line);
    });

  // --- acting on a delivery ---

  const act = async (cmd: Command, id: string, need: Need, body: Record<string, unknown>, flags: WaitFlags & { idempotencyKey?: string }, expect: string) => {
    const { client } = connect(cmd, need);
    const res = await client.request<StatusView | AcceptedView>('POST', `/v1/deliveries/${encodeURIComponent(id)}/actions`, {
      body,
      ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}),
    });
    const started = res.status === 202 || !isStatus(res.body) ? (res.body as AcceptedView) : undefined;
    if (json(cmd) && !flags.wait) return printJson(res.body);
    if (!json(cmd)) {
      if (started) out(`${String(body.action)} of ${id} started delivery ${started.id}${started.rollbackOf ? ` (restores what ${started.rollbackOf} changed)` : started.retryOf ? ` (resumes ${started.retryOf} where it was aborted)` : ''}`);
      else {
        const s = res.body as StatusView;
        out(`${String(body.action)} of ${id}${body.cluster ? ` (${String(body.cluster)})` : ''} done; the delivery is ${s.phase}${s.message ? `: ${s.message}` : ''}`);
      }
    }
    if (flags.wait) done(await followUp(cmd, client, started ? started.id : id, flags, started ? Phase.Healthy : expect, started ? undefined : (res.body as StatusView)));
  };

  for (const [name, decision] of [['approve', 'approve'], ['reject', 'reject']] as const) {
    program
      .command(name)
      .description(`${decision} a gate of a canary or blue-green delivery`)
      .argument('<id>', 'delivery id')
      .requiredOption('--gate <name>', 'the gate')
      .option('-m, --message <comment>', 'why (goes into the audit)')
      .addOption(idempotencyOption())
      .action((id: string, flags: { gate: string; message?: string; idempotencyKey?: string }, cmd: Command) =>
        act(cmd, id, Need.decide, { action: decision, gate: flags.gate, ...(flags.message ? { comment: flags.message } : {}) }, flags, Phase.Healthy),
      );
  }

  const actions: [string, string, string][] = [
    ['promote', 'promote a canary or blue-green delivery to its next step (--full: all the way)', Phase.Healthy],
    ['abort', 'stop a running delivery where it is', Phase.Aborted],
    ['retry', 'retry the failed clusters of the current wave (or --cluster one of them); on an Aborted delivery, start one that resumes where it stopped', Phase.Healthy],
    ['skip', 'go on without a failed cluster (--cluster)', Phase.Healthy],
    ['rollback', 'roll back what the delivery changed; on a finished delivery this starts a delivery that restores the state before it', Phase.RolledBack],
  ];
  for (const [name, summary, expect] of actions) {
    const cmd = program
      .command(name)
      .description(summary)
      .argument('<id>', 'delivery id')
      .option('--cluster <name>', 'the cluster it applies to')
      .option('-m, --message <comment>', 'why (goes into the audit)')
      .addOption(idempotencyOption());
    if (name === 'promote') cmd.option('--full', 'skip the remaining steps and promote fully');
    waitOptions(cmd, '--wait', `follow the delivery to its end: exit 0 when ${expect}`).action(
      (id: string, flags: { cluster?: string; message?: string; full?: boolean; idempotencyKey?: string } & WaitFlags, c: Command) =>
        act(
          c,
          id,
          Need.act,
          { action: name, ...(flags.cluster ? { cluster: flags.cluster } : {}), ...(flags.full ? { full: true } : {}), ...(flags.message ? { comment: flags.message } : {}) },
          flags,
          expect,
        ),
    );
  }

  // --- the fleet ---

  const fleetActions = {
    drain: 'move workloads off a cluster and keep new deliveries away from it (role sre)',
    undrain: 'let a drained cluster take new deliveries, and move its workloads back (role sre)',
    failover: 'move the workloads of a cluster to the healthy clusters their placement allows, now (role sre)',
    failback: 'move the workloads of a failed-over, healthy cluster back (the approval when the fleet waits for one; role sre)',
  } as const;
  for (const action of ['drain', 'undrain', 'failover', 'failback'] as const) {
    program
      .command(action)
      .description(fleetActions[action])
      .argument('<cluster>', 'cluster name')
      .option('-m, --message <comment>', 'why (goes into the audit)')
      .addOption(idempotencyOption())
      .action(async (cluster: string, flags: { message?: string; idempotencyKey?: string }, cmd: Command) => {
        const { client } = connect(cmd, Need.act);
        const res = await client.request<unknown>('POST', `/v1/clusters/${encodeURIComponent(cluster)}/actions`, {
          body: { action, ...(flags.message ? { comment: flags.message } : {}) },
          ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}),
        });
        if (json(cmd)) printJson(res.body);
        else {
          const c = res.body as { health?: string; drained?: boolean; failover?: { phase?: string; id?: string } };
          out(`${action} of ${cluster}: done; ${cluster} is ${c.health ?? '?'}${c.drained ? ', drained' : ''}${c.failover ? `, ${c.failover.phase} (${c.failover.id})` : ''}`);
        }
      });
  }

  program
    .command('config')
    .description('which API the CLI talks to, and where the URL and token come from (the token itself is never shown)')
    .action((_flags: unknown, cmd: Command) => {
      const { conn } = connect(cmd, Need.read);
      const view = { api: conn.url, apiFrom: conn.urlFrom, token: conn.token ? 'set' : 'none', tokenFrom: conn.tokenFrom };
      if (json(cmd)) return printJson(view);
      out(`api:   ${view.api}  (from ${view.apiFrom})`);
      out(`token: ${view.token === 'set' ? `from ${view.tokenFrom}` : 'none'}`);
    });

  return program;
}

/** Runs the CLI on `argv` (without node and script) and answers the exit code; every error is one line on stderr. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const state: RunState = { code: ExitCode.ok };
  const program = buildProgram(io, state);
  const err = (line: string) => void io.stderr.write(`${line}\n`);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return state.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version exit 0; every usage error has been printed by commander.
      return e.exitCode === 0 ? ExitCode.ok : ExitCode.error;
    }
    if (e instanceof ApiError) {
      const from = state.conn?.tokenFrom ?? 'none';
      const hint =
        e.status === 401
          ? from === 'none'
            ? 'no token was found: pass --token, set FLOTILLA_TOKEN, or write "token:" in the config file'
            : `the token from ${from} was refused`
          : e.status === 403
            ? `token from ${from}`
            : undefined;
      err(errorLine(e, hint));
      return ExitCode.error;
    }
    if (e instanceof ConfigError || e instanceof SpecError || e instanceof InvalidArgumentError) {
      err(`error: ${e.message}`);
      return ExitCode.error;
    }
    if ((e as Error).name === 'AbortError' && io.signal?.aborted) return ExitCode.interrupted;
    err(`error: ${(e as Error).message}`);
    return ExitCode.error;
  }
}
