/**
 * The one PostgreSQL connection factory (identity and audit stores share it). The
 * password comes from `state.postgres.password_file`, never from the URL; connection
 * errors are reported without it.
 */
import { resolve } from 'node:path';
import postgres from 'postgres';
import type { Config, PostgresConfig } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { storeTlsOptions } from './store-tls.js';

export type Sql = postgres.Sql;

/** `opts.ca`: the config's `ca` block, whose root is trusted by default with `tls` (docs/deploy.md#tls-to-the-stores). */
export function createPostgresClient(config: PostgresConfig, configDir: string, opts: { max?: number; ca?: Config['ca'] } = {}): Sql {
  const password = config.password_file ? readSecretFile(resolve(configDir, config.password_file)) : undefined;
  return postgres(config.url, {
    password,
    // verify-full: chain to a trusted root and the server's name checked (never sslmode=require's "encrypt only").
    ...(config.tls ? { ssl: storeTlsOptions(config.tls, { ca: opts.ca }, configDir) } : {}),
    max: opts.max ?? config.max_connections,
    connect_timeout: Math.ceil(config.connect_timeout / 1000),
    // Our own schema first, so unqualified names resolve there.
    connection: { search_path: `${config.schema},public`, application_name: 'gatehouse' },
    onnotice: () => undefined,
  });
}

/** The embedded-state directory (`state.dir`), resolved against the config file's directory. */
export function stateDir(dir: string, configDir: string): string {
  return resolve(configDir, dir);
}
