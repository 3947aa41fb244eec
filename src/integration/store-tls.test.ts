/**
 * TLS to the stores (docs/deploy.md#tls-to-the-stores), against a private redis-server with
 * only a TLS port (client certificates required) and a private PostgreSQL with ssl=on that
 * refuses plain-text connections, both with certificates from a test internal CA. A
 * certificate for another name and one from a CA the client does not trust are refused.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../config/load.js';
import { openIdentityStores } from '../identity/services.js';
import { createPostgresClient } from '../stores/postgres-client.js';
import { createRedisClient } from '../stores/rate-limit/redis-client.js';
import { redisConnection } from '../stores/store-tls.js';
import { baseConfig, request, startGateway, startUpstream, waitReady, writeConfig, type Upstream } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { startTlsPostgres, startTlsRedis, type TlsStore } from '../testing/tls-stores.js';

let ca: TestCa;
let other: TestCa;
let upstream: Upstream;

before(async () => {
  [ca, other] = await Promise.all([createTestCa(), createTestCa()]);
  upstream = await startUpstream();
});
after(() => upstream.close());

/** A loaded config (defaults applied) for `state`, with the test CA as the `ca` block. */
function configWith(state: Record<string, unknown>, top: Record<string, unknown> = {}) {
  const file = writeConfig({ ...baseConfig(upstream.url), ca: { dir: ca.caDir, password_file: ca.passwordFile }, state, ...top });
  return loadConfig(file);
}

/** Connects one Redis client as the gateway would; resolves 'PONG' or the connection error's code. */
async function redisOutcome(state: Record<string, unknown>): Promise<string> {
  const loaded = configWith(state);
  const client = createRedisClient({ ...redisConnection(loaded.config, loaded.dir), connectTimeoutMs: 3000 });
  try {
    return await new Promise<string>((ok) => {
      client.once('error', (e: NodeJS.ErrnoException) => ok(e.code ?? e.message));
      client.once('ready', () => void client.ping().then(ok, (e: Error) => ok(e.message)));
    });
  } finally {
    client.disconnect();
  }
}

describe('Redis over TLS (rediss://)', () => {
  let redis: TlsStore;
  let clientCert: string;
  let clientKey: string;
  before(async () => {
    const server = await ca.issue({ name: 'redis.internal', server: true });
    const started = await startTlsRedis( { certPem: server.chainPem, keyPem: server.keyPem, clientCa: ca.rootPem });
    if (started === false) return;
    redis = started;
    const client = await ca.issue({ name: 'gatehouse', client: true });
    clientCert = join(ca.dir, 'redis-client.crt');
    clientKey = join(ca.dir, 'redis-client.key');
    writeFileSync(clientCert, client.chainPem);
    writeFileSync(clientKey, client.keyPem, { mode: 0o600 });
  });
  after(() => redis?.stop());

  const state = (tls: Record<string, unknown>) => ({ store: 'redis', redis: { url: `rediss://127.0.0.1:${redis.port}/0`, key_prefix: `gh-tls-${process.pid}:`, tls } });

  it('verifies the server against the internal root and its name, with a client certificate: the gateway rate-limits through it', async (t) => {
    if (!redis) return void t.skip('no private TLS redis-server');
    assert.equal(await redisOutcome(state({ server_name: 'redis.internal', client_cert: { cert_file: clientCert, key_file: clientKey } })), 'PONG');
    const gw = await startGateway({
      ...baseConfig(upstream.url, { rate_limits: [{ id: 'all', limit: 2, window: '1m' }] }),
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      state: state({ server_name: 'redis.internal', client_cert: { cert_file: clientCert, key_file: clientKey } }),
    });
    try {
      await waitReady(Number(new URL(gw.adminUrl).port));
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await request(`${gw.url}/x`)).status);
      assert.deepEqual(statuses, [200, 200, 429]);
    } finally {
      await gw.close();
    }
  });

  it('refuses a certificate that does not name the server (server_name mismatch)', async (t) => {
    if (!redis) return void t.skip('no private TLS redis-server');
    assert.equal(await redisOutcome(state({ server_name: 'other.internal', client_cert: { cert_file: clientCert, key_file: clientKey } })), 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('refuses a server certificate from a CA it does not trust', async (t) => {
    if (!redis) return void t.skip('no private TLS redis-server');
    const otherRoot = join(other.dir, 'root.pem');
    writeFileSync(otherRoot, other.rootPem);
    const code = await redisOutcome(state({ server_name: 'redis.internal', ca_file: otherRoot, internal_ca: false, client_cert: { cert_file: clientCert, key_file: clientKey } }));
    assert.match(code, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT_IN_CHAIN/);
  });

  it('without the client certificate the server refuses the connection', async (t) => {
    if (!redis) return void t.skip('no private TLS redis-server');
    assert.notEqual(await redisOutcome(state({ server_name: 'redis.internal' })), 'PONG');
  });
});

describe('PostgreSQL over TLS (verify-full)', () => {
  let pg: TlsStore;
  before(async () => {
    const server = await ca.issue({ name: 'db.internal', server: true });
    const started = await startTlsPostgres( { certPem: server.chainPem, keyPem: server.keyPem });
    if (started === false) return;
    pg = started;
  });
  after(() => pg?.stop());

  const state = (tls?: Record<string, unknown>) => ({ postgres: { url: `postgres://postgres@127.0.0.1:${pg.port}/postgres`, connect_timeout: '5s', schema: `gh_tls_${process.pid}`, ...(tls ? { tls } : {}) } });

  async function outcome(tls?: Record<string, unknown>): Promise<string> {
    const loaded = configWith(state(tls));
    const sql = createPostgresClient(loaded.config.state.postgres as never, loaded.dir, { max: 1, ca: loaded.config.ca });
    try {
      const rows = await sql<Array<{ ssl: boolean; version: string }>>`select ssl, version from pg_stat_ssl where pid = pg_backend_pid()`;
      return rows[0]?.ssl ? `tls ${rows[0].version}` : 'plain';
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  it('connects over TLS verified against the internal root, and the identity store works through it', async (t) => {
    if (!pg) return void t.skip('no private TLS PostgreSQL');
    assert.match(await outcome({ server_name: 'db.internal' }), /^tls TLSv1\.[23]$/);
    const loaded = configWith(state({ server_name: 'db.internal' }), { identities: { store: 'postgres' } });
    const stores = openIdentityStores(loaded.config, loaded.dir);
    try {
      await stores.identities.init();
      assert.deepEqual(await stores.identities.list(), []);
    } finally {
      await stores.close();
    }
  });

  it('the test server refuses plain text (so the TLS result above is real)', async (t) => {
    if (!pg) return void t.skip('no private TLS PostgreSQL');
    assert.match(await outcome(undefined), /28000|no pg_hba.conf entry|reject/i);
  });

  it('refuses a certificate that does not name the server (server_name mismatch)', async (t) => {
    if (!pg) return void t.skip('no private TLS PostgreSQL');
    assert.equal(await outcome({ server_name: 'other.internal' }), 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('refuses a server certificate from a CA it does not trust', async (t) => {
    if (!pg) return void t.skip('no private TLS PostgreSQL');
    const otherRoot = join(other.dir, 'root.pem');
    writeFileSync(otherRoot, other.rootPem);
    assert.match(await outcome({ server_name: 'db.internal', ca_file: otherRoot, internal_ca: false }), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT_IN_CHAIN/);
  });

  it('with the host as the name (no server_name), a certificate for db.internal does not match 127.0.0.1', async (t) => {
    if (!pg) return void t.skip('no private TLS PostgreSQL');
    assert.equal(await outcome({}), 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
