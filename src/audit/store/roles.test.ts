/**
 * PostgreSQL least privilege, each role with exactly its grants (login roles created in
 * the test's own database):
 *
 * - the owner (CREATE on the database, CREATEROLE) runs `migrate`: schema, tables,
 *   triggers, the archive's tables and the prune function, the three NOLOGIN roles;
 * - the writer (member of `<schema>_audit_writer`: INSERT and SELECT) runs the gateway's
 *   store — `init` checks the version without DDL, appends, anchors — and can neither
 *   migrate nor change or delete a row;
 * - the reader (member of `<schema>_audit_reader`: SELECT) verifies and cannot write;
 * - before `migrate`, `init` fails with a message naming the command and does not create
 *   the schema (verifying a schema that does not exist must not create it).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import postgres from 'postgres';
import { needPostgres, POSTGRES_URL } from '../../testing/services.js';
import { v1StoreRecords } from '../chain.js';
import { verifyStore } from '../sources.js';
import { buildChain, HMAC_K1, keyring, testBody, testSigner } from '../test-support.js';
import { AuditWriter } from '../writer.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresAuditStore } from './postgres.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');

function as(user: string): ReturnType<typeof postgres> {
  const u = new URL(POSTGRES_URL);
  u.username = user;
  u.password = '';
  return postgres(u.toString(), { max: 2, onnotice: () => undefined });
}

describe('audit store: PostgreSQL roles (owner migrates, writer runs, reader verifies)', () => {
  it('each role can do exactly its part, with exactly its grants', async (t) => {
    if (!(await needPostgres(t))) return;
    const schema = `audit_r_${randomBytes(6).toString('hex')}`;
    const owner = `${schema}_owner`;
    const gw = `${schema}_gw`;
    const ro = `${schema}_ro`;
    const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    const db = new URL(POSTGRES_URL).pathname.slice(1);
    const signer = testSigner();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-roles-'));
    await admin.unsafe(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
    await admin.unsafe(`GRANT CREATE ON DATABASE ${db} TO ${owner}`);
    try {
      // Not migrated: a clear refusal, and looking does not create the schema.
      const early = createPostgresAuditStore(as(owner), schema);
      await assert.rejects(early.init(), /the audit schema "audit_r_[0-9a-f]+" does not exist: run `gatehouse audit migrate --config FILE` as its owner/);
      await early.close();
      const [ns] = await admin<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`;
      assert.equal(ns?.n, 0, 'init created nothing');

      const own = createPostgresAuditStore(as(owner), schema);
      await own.migrate();
      await own.migrate(); // idempotent: a second run (or an upgrade) changes nothing
      await own.init();
      await own.close();
      await admin.unsafe(`CREATE ROLE ${gw} LOGIN IN ROLE ${schema}_audit_writer`);
      await admin.unsafe(`CREATE ROLE ${ro} LOGIN IN ROLE ${schema}_audit_reader`);

      // The gateway as the writer: opens (version check), appends, records anchors.
      const wsql = as(gw);
      const ws = createPostgresAuditStore(wsql, schema);
      await assert.rejects(ws.migrate(), /permission denied|must be owner/);
      const w = await AuditWriter.open({ store: ws, keyring: K, signer, stateDir: dir, instance: 'i', mode: 'sync', flushIntervalMs: 5, batchMax: 100, checkpointRecords: 5, checkpointIntervalMs: 0, spoolLimitBytes: 1 << 20 });
      for (let i = 0; i < 12; i++) await w.append(testBody(i));
      assert.equal(w.storeHealthy, true);
      await w.close();
      await assert.rejects(wsql.unsafe(`CREATE TABLE ${schema}.x (a int)`), /permission denied/);
      await assert.rejects(wsql.unsafe(`UPDATE ${schema}.audit_records SET data = '{}'`), /permission denied/);
      await assert.rejects(wsql.unsafe(`DELETE FROM ${schema}.audit_checkpoints`), /permission denied/);
      await assert.rejects(wsql.unsafe(`ALTER TABLE ${schema}.audit_records DISABLE TRIGGER USER`), /must be owner/);
      await assert.rejects(wsql.unsafe(`SELECT ${schema}.audit_prune('s', 1)`), /permission denied/);
      await ws.close();

      // The verifier as the reader: reads everything, writes nothing.
      const rsql = as(ro);
      const rs = createPostgresAuditStore(rsql, schema);
      await rs.init();
      const reps = await verifyStore(rs, { keyring: K, publicKey: signer.publicKey });
      assert.equal(reps.length, 1);
      assert.deepEqual(reps[0]?.problems, []);
      assert.equal(reps[0]?.records, 13); // the restart record and 12 exchanges
      await assert.rejects(rs.append(v1StoreRecords(buildChain('x', 1, K, signer, []).records), []), /permission denied/);
      await assert.rejects(rs.migrate(), /permission denied|must be owner/);
      await rs.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const r of [gw, ro, `${schema}_audit_writer`, `${schema}_audit_reader`, `${schema}_audit_pruner`]) await admin.unsafe(`DROP ROLE IF EXISTS ${r}`);
      await admin.unsafe(`REVOKE CREATE ON DATABASE ${db} FROM ${owner}`);
      await admin.unsafe(`DROP OWNED BY ${owner}`).catch(() => undefined);
      await admin.unsafe(`DROP ROLE IF EXISTS ${owner}`);
      await admin.end({ timeout: 2 });
    }
  });
});
