/**
 * The API process: config -> logger -> inventory and tokens -> Temporal
 * connection -> express. On SIGTERM/SIGINT it stops accepting connections,
 * lets requests in flight finish (up to a grace period), then closes the
 * Temporal connection.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { createApp } from './app.ts';
import { loadConfig, loadInventory, loadRegistries, loadTokens } from './config.ts';
import { createLogger } from './logger.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.FLOTILLA_LOG_LEVEL);
  const [fleet, tokens, registries] = await Promise.all([
    loadInventory(config.FLOTILLA_INVENTORY),
    loadTokens(config.FLOTILLA_API_TOKENS_FILE),
    loadRegistries(config.FLOTILLA_INVENTORY),
  ]);
  if (Object.keys(tokens).length === 0)
    log.warn('the tokens file holds no token: every /v1 request will get 401');

  // Connection.lazy: the API starts (and /readyz says 503) while Temporal is still coming up.
  const connection = Connection.lazy({ address: config.FLOTILLA_TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: config.FLOTILLA_TEMPORAL_NAMESPACE });
  const app = createApp({ temporal, inventory: fleet, tokens, logger: log, protectedNamespaces: config.FLOTILLA_PROTECTED_NAMESPACES, versionHistory: config.FLOTILLA_VERSION_HISTORY, registries });

  const server = app.listen(config.FLOTILLA_API_PORT, config.FLOTILLA_API_HOST);
  await once(server, 'listening');
  const { address, port } = server.address() as AddressInfo;
  log.info(
    {
      address,
      port,
      clusters: fleet.map((c) => c.name),
      temporal: config.FLOTILLA_TEMPORAL_ADDRESS,
      namespace: config.FLOTILLA_TEMPORAL_NAMESPACE,
    },
    'flotilla api listening',
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections; waiting for requests in flight');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const grace = setTimeout(() => {
      log.warn(
        { graceMs: config.FLOTILLA_API_SHUTDOWN_GRACE_MS },
        'grace period over: closing the remaining connections',
      );
      server.closeAllConnections();
    }, config.FLOTILLA_API_SHUTDOWN_GRACE_MS);
    grace.unref();
    await closed;
    await connection
      .close()
      .catch((e: unknown) => log.warn({ err: e }, 'closing the Temporal connection failed'));
    log.info('stopped');
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((e: unknown) => {
  // Config errors never contain a token (config.ts names entries by position).
  process.stderr.write(`flotilla api: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
