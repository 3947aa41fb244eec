/**
 * TLS to gatehouse's own stores (PostgreSQL, Redis), with `verify-full` semantics: the
 * server's chain must end at a trusted root AND its certificate must carry the expected
 * name (`server_name`, default the URL's host). There is no "encrypt but don't verify"
 * mode: an unverified TLS connection protects against nobody who can intercept it.
 *
 * Trust: `ca_file` when given; the internal CA's root when a `ca` block exists (and
 * `internal_ca` is not false); both when `internal_ca: true` and a `ca_file` are given;
 * Node's bundled public roots only when neither applies.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type { Config, StoreTlsConfig } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { readRootPem } from '../pki/ca.js';
import { isLoopbackHost } from '../server/address.js';

export function storeTlsOptions(tls: StoreTlsConfig, config: Pick<Config, 'ca'>, dir: string): ConnectionOptions {
  const options: ConnectionOptions = { rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  const ca: string[] = [];
  if (tls.ca_file !== undefined) ca.push(readFileSync(resolve(dir, tls.ca_file), 'utf8'));
  if (tls.internal_ca ?? tls.ca_file === undefined) {
    if (config.ca) ca.push(readRootPem(resolve(dir, config.ca.dir)));
    else if (tls.internal_ca === true) throw new Error('store tls.internal_ca needs a top-level ca block');
  }
  if (ca.length > 0) options.ca = ca;
  if (tls.server_name !== undefined) options.servername = tls.server_name;
  if (tls.client_cert) {
    options.cert = readFileSync(resolve(dir, tls.client_cert.cert_file), 'utf8');
    options.key = readSecretFile(resolve(dir, tls.client_cert.key_file));
  }
  return options;
}

/** Everything a Redis client of the gateway needs to connect: URL, password (from its file), TLS. */
export interface RedisConnection {
  readonly url: string;
  readonly password: string | undefined;
  readonly tls: ConnectionOptions | undefined;
}

export function redisConnection(config: Pick<Config, 'ca' | 'state'>, dir: string): RedisConnection {
  const r = config.state.redis;
  if (!r) throw new Error('state.redis missing');
  const password = r.password_file ? readSecretFile(resolve(dir, r.password_file)) : undefined;
  // rediss:// turns TLS on (ioredis); the block only says how to verify.
  const tls = r.url.startsWith('rediss:') ? storeTlsOptions(r.tls ?? {}, config, dir) : undefined;
  return { url: r.url, password, tls };
}

/** Host of a store URL without IPv6 brackets ('' when it cannot be parsed). */
export function storeHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}

/** What is wrong with the encryption of the configured store connections (none: []). For `check` (warning) and `doctor` (failure). */
export function unencryptedStores(config: Pick<Config, 'state' | 'audit' | 'identities' | 'auth'>): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const pg = config.state.postgres;
  const pgUsed = config.audit.store === 'postgres' || config.identities.store === 'postgres';
  if (pg && pgUsed && pg.tls === undefined) {
    const host = storeHost(pg.url);
    if (!isLoopbackHost(host)) out.push({ path: 'state.postgres', message: `PostgreSQL at ${host} is not on loopback and the connection is not encrypted: add state.postgres.tls (verify-full)` });
  }
  const r = config.state.redis;
  if (r && config.state.store === 'redis' && !r.url.startsWith('rediss:')) {
    const host = storeHost(r.url);
    if (!isLoopbackHost(host)) out.push({ path: 'state.redis.url', message: `Redis at ${host} is not on loopback and the connection is not encrypted: use a rediss:// URL (and state.redis.tls)` });
  }
  return out;
}
