/**
 * The one PostgreSQL connection factory (identity and audit stores share it). The
 * password comes from `state.postgres.password_file`, never from the URL; connection
 * errors are reported without it.
 */
import { resolve } from 'node:path';
import postgres from 'postgres';
import type { PostgresConfig } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';

export type Sql = postgres.Sql;

export function createPostgresClient(config: PostgresConfig, configDir: string, opts: { max?: number } = {}): Sql {
  const password = config.password_file ? readSecretFile(resolve(configDir, config.password_file)) : undefined;
  return postgres(config.url, {
    password,
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
