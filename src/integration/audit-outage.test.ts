/**
 * The audit store goes away (a TCP proxy in front of PostgreSQL is cut): records spool
 * locally and the gateway keeps serving; once the spool limit is reached it refuses with
 * 503 audit_unavailable (fail closed); when the store is back the spool replays in order,
 * traffic is admitted again and the chain verifies — one stream, no new genesis.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import postgres from 'postgres';
import { loadPublicKey } from '../audit/checkpoint.js';
import { createKeyring, decodeKey } from '../audit/keyring.js';
import { verifyStore } from '../audit/sources.js';
import { createPostgresAuditStore } from '../audit/store/postgres.js';
import { auditFiles } from '../audit/test-files.js';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';
import { baseConfig, request, sleep, startGateway, startUpstream } from '../testing/harness.js';

/** A cuttable TCP proxy to PostgreSQL. */
async function pgProxy(): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const target = new URL(POSTGRES_URL);
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = () =>
    new Promise<void>((ok) => {
      server = createServer((c) => {
        const u = connect(Number(target.port || 5432), target.hostname);
        sockets.add(c).add(u);
        c.pipe(u).pipe(c);
        const end = () => {
          c.destroy();
          u.destroy();
          sockets.delete(c);
          sockets.delete(u);
        };
        c.on('error', end).on('close', end);
        u.on('error', end).on('close', end);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server.address() as AddressInfo).port;
        ok();
      });
    });
  await listen();
  const cut = () =>
    new Promise<void>((ok) => {
      server.close(() => ok());
      for (const s of sockets) s.destroy();
    });
  return { port, cut, restore: listen, close: cut };
}

it('store outage: spool, then 503 audit_unavailable at the spool limit, then replay and a verifiable chain', async (t) => {
  if (!(await needPostgres(t))) return;
  const up = await startUpstream();
  const proxy = await pgProxy();
  const files = auditFiles();
  const schema = `audit_o_${randomBytes(6).toString('hex')}`;
  const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
  const url = new URL(POSTGRES_URL);
  url.port = String(proxy.port);
  // The owner migrates (the gateway never runs DDL).
  const owner = createPostgresAuditStore(postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined }), schema);
  await owner.migrate();
  await owner.close();
  const gw = await startGateway(
    baseConfig(up.url, {}, {
      state: { dir: files.stateDir, postgres: { url: url.toString(), schema, connect_timeout: '1s' } },
      audit: files.block({ store: 'postgres', spool_limit: '4KiB', flush_interval: '5ms' }),
    }),
  );
  try {
    assert.equal((await request(`${gw.url}/before`)).status, 200);
    await gw.gw.audit?.writer.flush();
    await proxy.cut();
    // Served while the spool has room; the records are durable in the local spool.
    const during: number[] = [];
    for (let i = 0; i < 60; i++) {
      during.push((await request(`${gw.url}/during/${i}`)).status);
      await gw.gw.audit?.writer.flush();
    }
    assert.equal(during[0], 200);
    assert.ok(during.includes(503), `the spool limit is reached: ${during.join(',')}`);
    const refused = await request(`${gw.url}/refused`);
    assert.equal(refused.status, 503);
    assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'audit_unavailable');
    assert.equal(gw.gw.audit?.writer.storeHealthy, false);
    const ready = await request(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 503);

    await proxy.restore();
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await sleep(100);
      await gw.gw.audit?.writer.flush();
      status = (await request(`${gw.url}/after`)).status;
    }
    assert.equal(status, 200, 'admitted again once the spool replayed');
    assert.equal(gw.gw.audit?.writer.status().spool_bytes, 0);
  } finally {
    await gw.close();
    await proxy.close();
    await up.close();
  }
  const store = createPostgresAuditStore(postgres(POSTGRES_URL, { max: 2, onnotice: () => undefined }), schema);
  try {
    const reps = await verifyStore(store, {
      keyring: createKeyring(new Map([['k1', decodeKey(readFileSync(files.k1, 'utf8'))]]), 'k1'),
      publicKey: loadPublicKey(readFileSync(files.publicKey, 'utf8')),
    });
    assert.equal(reps.length, 1, 'one stream: the outage did not start a new chain');
    assert.deepEqual(reps[0]?.problems, []);
    const recs = await store.query({ limit: 10_000 });
    assert.ok(recs.some((r) => r.path === '/during/0'));
    const agg = recs.filter((r) => r.kind === 'drop_aggregate' && r.code === 'audit_unavailable');
    assert.ok(agg.length > 0 && agg.reduce((n, r) => n + r.count, 0) >= 2, 'the refusals are recorded, aggregated');
  } finally {
    await store.close();
    await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_writer`);
    await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_reader`);
    await admin.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_pruner`);
    await admin.end({ timeout: 2 });
    rmSync(files.dir, { recursive: true, force: true });
  }
});
