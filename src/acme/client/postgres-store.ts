/**
 * The shared ACME store: several gatehouse instances behind one name keep the account key
 * and each site's certificate in PostgreSQL (state.postgres, its schema). The order lock
 * is a session advisory lock on a reserved connection: the instance that takes it orders,
 * the others find it busy and pick up the stored certificate once it is there. A process
 * that dies mid-order drops its connection, and with it the lock.
 *
 * The certificate's private key is stored in the table as PEM: anyone who can read that
 * schema can read it (docs/acme-client.md says so; grant it to gatehouse's role only).
 */
import type { Sql } from '../../stores/postgres-client.js';
import { directoryNamespace, type AcmeStore } from './store.js';

export function createPostgresAcmeStore(sql: Sql, schema: string, directory: string, ownsClient: boolean): AcmeStore {
  const s = sql(schema);
  const ns = directoryNamespace(directory);
  return {
    async init() {
      await sql`CREATE SCHEMA IF NOT EXISTS ${s}`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_accounts (
        directory text PRIMARY KEY,
        key_pem text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_certificates (
        directory text NOT NULL,
        name text NOT NULL,
        chain_pem text NOT NULL,
        key_pem text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (directory, name)
      )`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.acme_challenges (
        token text PRIMARY KEY,
        key_authorization text NOT NULL,
        expires_at timestamptz NOT NULL
      )`;
    },
    async loadAccountKey() {
      const rows = await sql<Array<{ key_pem: string }>>`SELECT key_pem FROM ${s}.acme_accounts WHERE directory = ${ns}`;
      return rows[0]?.key_pem ?? null;
    },
    async saveAccountKey(keyPem) {
      await sql`INSERT INTO ${s}.acme_accounts (directory, key_pem) VALUES (${ns}, ${keyPem}) ON CONFLICT (directory) DO NOTHING`;
      const rows = await sql<Array<{ key_pem: string }>>`SELECT key_pem FROM ${s}.acme_accounts WHERE directory = ${ns}`;
      return rows[0]?.key_pem ?? keyPem;
    },
    async load(name) {
      const rows = await sql<Array<{ chain_pem: string; key_pem: string }>>`SELECT chain_pem, key_pem FROM ${s}.acme_certificates WHERE directory = ${ns} AND name = ${name}`;
      const r = rows[0];
      return r ? { chainPem: r.chain_pem, keyPem: r.key_pem } : null;
    },
    async save(name, cert) {
      await sql`INSERT INTO ${s}.acme_certificates (directory, name, chain_pem, key_pem) VALUES (${ns}, ${name}, ${cert.chainPem}, ${cert.keyPem})
        ON CONFLICT (directory, name) DO UPDATE SET chain_pem = EXCLUDED.chain_pem, key_pem = EXCLUDED.key_pem, updated_at = now()`;
    },
    async withOrderLock(name, fn) {
      const conn = await sql.reserve();
      const key = `gatehouse.acme:${schema}:${ns}:${name}`;
      try {
        const [row] = await conn<Array<{ ok: boolean }>>`SELECT pg_try_advisory_lock(hashtextextended(${key}, 0)) AS ok`;
        if (!row?.ok) return 'busy';
        try {
          return await fn();
        } finally {
          await conn`SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`;
        }
      } finally {
        conn.release();
      }
    },
    shared: true,
    async publishChallenge(token, keyAuthorization) {
      // Rows outlive a crashed order by at most an hour (a CA validates within minutes).
      await sql`DELETE FROM ${s}.acme_challenges WHERE expires_at < now()`;
      await sql`INSERT INTO ${s}.acme_challenges (token, key_authorization, expires_at) VALUES (${token}, ${keyAuthorization}, now() + interval '1 hour')
        ON CONFLICT (token) DO UPDATE SET key_authorization = EXCLUDED.key_authorization, expires_at = EXCLUDED.expires_at`;
    },
    async withdrawChallenge(token) {
      await sql`DELETE FROM ${s}.acme_challenges WHERE token = ${token}`;
    },
    async lookupChallenge(token) {
      const rows = await sql<Array<{ key_authorization: string }>>`SELECT key_authorization FROM ${s}.acme_challenges WHERE token = ${token} AND expires_at > now()`;
      return rows[0]?.key_authorization ?? null;
    },
    async close() {
      if (ownsClient) await sql.end({ timeout: 5 });
    },
  };
}
