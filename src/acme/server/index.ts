/**
 * The ACME server's only door: opens its store (SQLite in state.dir, or PostgreSQL +
 * Redis nonces), loads the internal CA, and starts the listener (docs/acme.md).
 */
import { join, resolve } from 'node:path';
import type { Config } from '../../config/schema.js';
import { readSecretFile } from '../../config/secrets.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { loadCa } from '../../pki/ca.js';
import { createPostgresClient, stateDir } from '../../stores/postgres-client.js';
import { createRedisClient } from '../../stores/rate-limit/index.js';
import { redisConnection } from '../../stores/store-tls.js';
import { AcmeServer, type AcmeAuditEvent } from './server.js';
import { createPostgresAcmeStore } from './store/postgres.js';
import { createRedisNonceStore } from './store/redis-nonces.js';
import { createSqliteAcmeStore, createSqliteNonceStore, openAcmeDatabase } from './store/sqlite.js';
import type { AcmeStore, NonceStore } from './store/types.js';

export { AcmeServer, type AcmeAuditEvent } from './server.js';
export { validateAcmeServer } from './validate.js';

export interface OpenAcmeOptions {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly audit?: (e: AcmeAuditEvent) => Promise<void>;
  readonly now?: () => number;
}

export function openAcmeStores(config: Config, dir: string): { store: AcmeStore; nonces: NonceStore } {
  const a = config.acme_server;
  if (!a) throw new Error('acme_server is not configured');
  if (a.store === 'sqlite') {
    const db = openAcmeDatabase(join(stateDir(config.state.dir, dir), 'acme.db'));
    const store = createSqliteAcmeStore(db);
    const nonces = createSqliteNonceStore(db);
    // The nonce store closes the shared database last.
    return { store, nonces: { ...nonces, close: async () => void db.close() } };
  }
  const pg = config.state.postgres;
  const r = config.state.redis;
  if (!pg || !r) throw new Error('acme_server.store postgres needs state.postgres and state.redis');
  const sql = createPostgresClient(pg, dir, { ca: config.ca, max: Math.min(pg.max_connections, 5) });
  const client = createRedisClient({ ...redisConnection(config, dir), commandTimeoutMs: r.command_timeout, connectTimeoutMs: r.connect_timeout });
  return { store: createPostgresAcmeStore(sql, pg.schema, { closeSql: true }), nonces: createRedisNonceStore(client, `${r.key_prefix}acme:nonce:`, { disconnect: true }) };
}

export async function openAcmeServer(config: Config, dir: string, opts: OpenAcmeOptions): Promise<AcmeServer> {
  const a = config.acme_server;
  if (!a || !config.ca) throw new Error('acme_server needs a ca block');
  const ca = await loadCa(resolve(dir, config.ca.dir), readSecretFile(resolve(dir, config.ca.password_file)));
  const { store, nonces } = openAcmeStores(config, dir);
  try {
    await store.init();
    return await AcmeServer.start({ config: a, configDir: dir, ca, listenerCertLifetimeMs: config.ca.lifetime, store, nonces, log: opts.log, metrics: opts.metrics, audit: opts.audit, now: opts.now });
  } catch (err) {
    await store.close().catch(() => undefined);
    await nonces.close().catch(() => undefined);
    throw err;
  }
}
