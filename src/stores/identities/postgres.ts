/**
 * The PostgreSQL identity registry (state.postgres), for many gateway instances. Tables
 * live in the configured schema; a one-row counter changes on every write so instances
 * poll one integer, not the table.
 */
import type { Sql } from '../postgres-client.js';
import { IdentityExistsError, type IdentityRecord, type IdentityStore } from './types.js';

interface Row {
  subject: string;
  type: 'agent' | 'human';
  domain: string | null;
  role: string | null;
  status: 'active' | 'suspended';
  rpm_limit: number | null;
  created_at: string | number;
  updated_at: string | number;
}

function rec(r: Row): IdentityRecord {
  return { subject: r.subject, type: r.type, domain: r.domain, role: r.role, status: r.status, rpm_limit: r.rpm_limit, created_at: Number(r.created_at), updated_at: Number(r.updated_at) };
}

export function createPostgresIdentityStore(sql: Sql, schema: string): IdentityStore {
  const s = sql(schema);
  return {
    kind: 'postgres',
    async init() {
      await sql`CREATE SCHEMA IF NOT EXISTS ${s}`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.identities (
        subject text PRIMARY KEY,
        type text NOT NULL CHECK (type IN ('agent', 'human')),
        domain text,
        role text,
        status text NOT NULL CHECK (status IN ('active', 'suspended')),
        rpm_limit integer,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      )`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.identity_credentials (
        subject text PRIMARY KEY REFERENCES ${s}.identities (subject) ON DELETE CASCADE,
        llm text NOT NULL,
        updated_at bigint NOT NULL
      )`;
      await sql`CREATE TABLE IF NOT EXISTS ${s}.identity_version (id integer PRIMARY KEY CHECK (id = 1), v bigint NOT NULL)`;
      await sql`INSERT INTO ${s}.identity_version (id, v) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`;
    },
    async list() {
      return (await sql<Row[]>`SELECT * FROM ${s}.identities ORDER BY subject`).map(rec);
    },
    async get(subject) {
      const rows = await sql<Row[]>`SELECT * FROM ${s}.identities WHERE subject = ${subject}`;
      return rows[0] ? rec(rows[0]) : null;
    },
    async add(r, t) {
      return sql.begin(async (tx) => {
        const rows = await tx<Row[]>`INSERT INTO ${s}.identities (subject, type, domain, role, status, rpm_limit, created_at, updated_at)
          VALUES (${r.subject}, ${r.type}, ${r.domain}, ${r.role}, ${r.status}, ${r.rpm_limit}, ${t}, ${t})
          ON CONFLICT (subject) DO NOTHING RETURNING *`;
        if (!rows[0]) throw new IdentityExistsError(`identity ${r.subject} exists`);
        await tx`UPDATE ${s}.identity_version SET v = v + 1 WHERE id = 1`;
        return rec(rows[0]);
      }) as Promise<IdentityRecord>;
    },
    async update(subject, p, t) {
      return sql.begin(async (tx) => {
        const cur = (await tx<Row[]>`SELECT * FROM ${s}.identities WHERE subject = ${subject} FOR UPDATE`)[0];
        if (!cur) return null;
        const rows = await tx<Row[]>`UPDATE ${s}.identities SET
          domain = ${p.domain !== undefined ? p.domain : cur.domain},
          role = ${p.role !== undefined ? p.role : cur.role},
          status = ${p.status ?? cur.status},
          rpm_limit = ${p.rpm_limit !== undefined ? p.rpm_limit : cur.rpm_limit},
          updated_at = ${t}
          WHERE subject = ${subject} RETURNING *`;
        await tx`UPDATE ${s}.identity_version SET v = v + 1 WHERE id = 1`;
        return rows[0] ? rec(rows[0]) : null;
      }) as Promise<IdentityRecord | null>;
    },
    async remove(subject) {
      return sql.begin(async (tx) => {
        const rows = await tx`DELETE FROM ${s}.identities WHERE subject = ${subject} RETURNING subject`;
        if (rows.length > 0) await tx`UPDATE ${s}.identity_version SET v = v + 1 WHERE id = 1`;
        return rows.length > 0;
      }) as Promise<boolean>;
    },
    async setCredential(subject, stored, t) {
      return sql.begin(async (tx) => {
        const cur = await tx`SELECT subject FROM ${s}.identities WHERE subject = ${subject} FOR UPDATE`;
        if (cur.length === 0) return false;
        if (stored === null) await tx`DELETE FROM ${s}.identity_credentials WHERE subject = ${subject}`;
        else
          await tx`INSERT INTO ${s}.identity_credentials (subject, llm, updated_at) VALUES (${subject}, ${stored}, ${t})
            ON CONFLICT (subject) DO UPDATE SET llm = excluded.llm, updated_at = excluded.updated_at`;
        await tx`UPDATE ${s}.identity_version SET v = v + 1 WHERE id = 1`;
        return true;
      }) as Promise<boolean>;
    },
    async credentials() {
      const rows = await sql<Array<{ subject: string; llm: string }>>`SELECT subject, llm FROM ${s}.identity_credentials`;
      return new Map(rows.map((r) => [r.subject, r.llm]));
    },
    async version() {
      const rows = await sql<Array<{ v: string }>>`SELECT v FROM ${s}.identity_version WHERE id = 1`;
      return Number(rows[0]?.v ?? 0);
    },
    async close() {
      await sql.end({ timeout: 2 });
    },
  };
}
