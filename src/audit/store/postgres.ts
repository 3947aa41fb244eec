/**
 * The distributed audit store: PostgreSQL, one table shared by every gateway instance
 * (each writes its own stream, so no lock is shared). The tables are append-only in the
 * database itself: row triggers refuse UPDATE and DELETE, a statement trigger refuses
 * TRUNCATE, for every role including the owner (a superuser can still disable triggers;
 * the chain and the signed checkpoints are what catch that).
 *
 * Roles (docs/audit.md, "Roles"): `migrate` (`gatehouse audit migrate`) runs every DDL
 * statement as the schema's owner and creates three NOLOGIN roles to grant: the writer
 * (INSERT and SELECT, for the gateway), the reader (SELECT, for verify and export) and the
 * pruner. `init` runs no DDL: it checks the schema version and refuses with a clear
 * message when a migration is needed, so the gateway never needs the owner's credentials.
 */
import type { Sql } from '../../stores/postgres-client.js';
import { leafHex } from '../chain-hash.js';
import type { Checkpoint } from '../checkpoint.js';
import type { ChainedRecord } from '../record.js';
import { postgresArchiveSchema } from './archive-schema.js';
import { isStoredV2, parseStoredV2 } from '../v2.js';
import type { ArchiveAnchor, AuditStore, RecordQuery, StoreRecord, StoredCheckpoint } from './types.js';

/**
 * A string PostgreSQL's json parser accepts: JSON.stringify writes a lone surrogate (a
 * token's `sub` may hold one) as "\ud800", which json refuses, and one such record would
 * fail its whole batch forever (spooled, replayed, refused again). The index column gets
 * U+FFFD for it — what binding the string as a parameter always stored — while `data`, the
 * record that is hashed and verified, keeps it exactly (escaped, as plain ASCII).
 */
function wellFormed(s: string): string {
  return (s as string & { toWellFormed(): string }).toWellFormed();
}

/** The schema version `gatehouse audit migrate` sets up and the gateway requires. */
export const AUDIT_SCHEMA_VERSION = 2;

/** The schema is missing, older or newer than this build: an operator must run `gatehouse audit migrate`. */
export class AuditSchemaError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuditSchemaError';
  }
}

/** The records and checkpoints tables, their append-only triggers and the version table (owner DDL). */
function postgresAuditSchema(schema: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${schema};
CREATE TABLE IF NOT EXISTS ${schema}.audit_schema_version (
  version INT NOT NULL,
  time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ${schema}.audit_records (
  id BIGSERIAL PRIMARY KEY,
  stream TEXT NOT NULL,
  seq BIGINT NOT NULL,
  time TEXT NOT NULL,
  subject TEXT,
  decision TEXT,
  hash TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_stream_seq ON ${schema}.audit_records (stream, seq);
CREATE INDEX IF NOT EXISTS audit_records_time ON ${schema}.audit_records (time);
CREATE TABLE IF NOT EXISTS ${schema}.audit_checkpoints (
  id BIGSERIAL PRIMARY KEY,
  stream TEXT NOT NULL,
  seq BIGINT NOT NULL,
  data TEXT NOT NULL,
  frontier TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_stream_seq ON ${schema}.audit_checkpoints (stream, seq);
CREATE OR REPLACE FUNCTION ${schema}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'gatehouse audit tables are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_records_append_only' AND tgrelid = '${schema}.audit_records'::regclass) THEN
    CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON ${schema}.audit_records FOR EACH ROW EXECUTE FUNCTION ${schema}.audit_append_only();
    CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON ${schema}.audit_records FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.audit_append_only();
    CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON ${schema}.audit_checkpoints FOR EACH ROW EXECUTE FUNCTION ${schema}.audit_append_only();
    CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON ${schema}.audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION ${schema}.audit_append_only();
  END IF;
END $$;
`;
}

/**
 * The three NOLOGIN roles an operator grants to login roles (docs/audit.md, "Roles"),
 * after every table exists: the writer (the gateway: INSERT and SELECT, nothing else), the
 * reader (verify, export: SELECT only) and the pruner (audit prune: the prune function).
 */
function postgresRoleGrants(schema: string): string {
  const s = schema;
  const tables = ['audit_records', 'audit_checkpoints', 'audit_archive_anchors', 'audit_prunes', 'audit_schema_version'].map((x) => `${s}.${x}`).join(', ');
  return `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${s}_audit_writer') THEN
    CREATE ROLE ${s}_audit_writer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${s}_audit_reader') THEN
    CREATE ROLE ${s}_audit_reader NOLOGIN;
  END IF;
END $$;
REVOKE ALL ON SCHEMA ${s} FROM PUBLIC;
GRANT USAGE ON SCHEMA ${s} TO ${s}_audit_writer, ${s}_audit_reader, ${s}_audit_pruner;
GRANT SELECT ON ${tables} TO ${s}_audit_writer, ${s}_audit_reader;
GRANT INSERT ON ${s}.audit_records, ${s}.audit_checkpoints, ${s}.audit_archive_anchors TO ${s}_audit_writer;
GRANT USAGE ON SEQUENCE ${s}.audit_records_id_seq, ${s}.audit_checkpoints_id_seq, ${s}.audit_archive_anchors_id_seq TO ${s}_audit_writer;
`;
}

export function createPostgresAuditStore(sql: Sql, schema: string): AuditStore {
  const t = (name: string) => sql(`${schema}.${name}`);
  type Page = Array<{ id: number; data: string }>;
  const page = async (stream: string, afterId: number, limit: number): Promise<Page> => {
    const rows = await sql<Array<{ id: string; data: string }>>`SELECT id, data FROM ${t('audit_records')} WHERE stream = ${stream} AND id > ${afterId} ORDER BY id LIMIT ${limit}`;
    return rows.map((r) => ({ id: Number(r.id), data: r.data }));
  };
  /** Appends issued so far: a page read ahead is used only if none was issued since (a reader sees its own writes). */
  let appends = 0;
  let readAhead: { stream: string; afterId: number; limit: number; appends: number; page: Promise<Page> } | null = null;
  return {
    kind: 'postgres',
    async init() {
      // No DDL here: the gateway runs as the writer role and the verifier as the reader
      // role, neither of which may create anything (and a schema that does not exist must
      // not be created by looking at it). `gatehouse audit migrate` does that, as the owner.
      const [row] = await sql<Array<{ t: string | null }>>`SELECT to_regclass(${`${schema}.audit_schema_version`})::text AS t`;
      if (row?.t === null || row?.t === undefined) {
        const [ns] = await sql<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`;
        throw new AuditSchemaError(
          ns?.n === 0
            ? `the audit schema "${schema}" does not exist: run \`gatehouse audit migrate --config FILE\` as its owner first`
            : `the audit schema "${schema}" is not set up for this version (no audit_schema_version table): run \`gatehouse audit migrate --config FILE\` as its owner`,
        );
      }
      let version: number;
      try {
        const rows = await sql<Array<{ version: number }>>`SELECT max(version)::int AS version FROM ${t('audit_schema_version')}`;
        version = rows[0]?.version ?? 0;
      } catch (err) {
        throw new AuditSchemaError(`cannot read ${schema}.audit_schema_version: ${(err as Error).message} (grant the role ${schema}_audit_writer or ${schema}_audit_reader)`, { cause: err });
      }
      if (version < AUDIT_SCHEMA_VERSION) throw new AuditSchemaError(`the audit schema "${schema}" is at version ${version}, this gatehouse needs ${AUDIT_SCHEMA_VERSION}: run \`gatehouse audit migrate --config FILE\` as its owner`);
      if (version > AUDIT_SCHEMA_VERSION) throw new AuditSchemaError(`the audit schema "${schema}" is at version ${version}, newer than this gatehouse knows (${AUDIT_SCHEMA_VERSION}): upgrade gatehouse`);
    },
    async migrate() {
      // Concurrent migrations serialize on an advisory lock.
      await sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(hashtext(${`gatehouse_audit_init:${schema}`}))`;
        await tx.unsafe(postgresAuditSchema(schema));
        await tx.unsafe(postgresArchiveSchema(schema));
        await tx.unsafe(postgresRoleGrants(schema));
        await tx.unsafe(`INSERT INTO ${schema}.audit_schema_version (version, time) SELECT ${AUDIT_SCHEMA_VERSION}, now()::text WHERE NOT EXISTS (SELECT 1 FROM ${schema}.audit_schema_version WHERE version = ${AUDIT_SCHEMA_VERSION})`);
      });
    },
    async append(records, cps) {
      appends++;
      readAhead = null;
      try {
        await sql.begin(async (tx) => {
          if (records.length > 0) {
            // The whole batch as one JSON text parameter, unpacked by json_to_recordset: one
            // prepared statement whatever the batch size (a multi-row VALUES list is a new
            // statement per row count and binds 7 × n parameters), and the client's work is
            // one native JSON.stringify — measured ~2× less client CPU per record than VALUES
            // and ~8× less than text[] arrays, whose element escaping is done in JavaScript.
            // WITH ORDINALITY … ORDER BY keeps the batch's order in the ids (storage order).
            const rows = new Array<{ stream: string; seq: number; time: string; subject: string | null; decision: string | null; hash: string; data: string }>(records.length);
            for (let i = 0; i < records.length; i++) {
              const r = records[i] as StoreRecord;
              rows[i] = { stream: r.stream, seq: r.seq, time: r.time, subject: r.subject === null ? null : wellFormed(r.subject), decision: r.decision, hash: r.hash, data: r.data };
            }
            await tx`INSERT INTO ${t('audit_records')} (stream, seq, time, subject, decision, hash, data)
              SELECT x.stream, x.seq, x.time, x.subject, x.decision, x.hash, x.data
              FROM ROWS FROM (json_to_recordset(${JSON.stringify(rows)}::text::json)
                AS (stream text, seq bigint, time text, subject text, decision text, hash text, data text))
                WITH ORDINALITY AS x(stream, seq, time, subject, decision, hash, data, n)
              ORDER BY x.n`;
          }
          for (const c of cps) {
            await tx`INSERT INTO ${t('audit_checkpoints')} (stream, seq, data, frontier) VALUES (${c.checkpoint.stream}, ${c.checkpoint.seq}, ${JSON.stringify(c.checkpoint)}, ${JSON.stringify(c.frontier)})`;
          }
        });
      } finally {
        // Reads run on other pooled connections: a page read ahead while this transaction
        // was open may predate its commit, and must not be served after it.
        appends++;
        readAhead = null;
      }
    },
    async head(stream) {
      const recs = await sql<Array<{ seq: string; hash: string; data: string }>>`SELECT seq, hash, data FROM ${t('audit_records')} WHERE stream = ${stream} ORDER BY seq DESC, id DESC LIMIT 1`;
      const rec = recs[0];
      if (rec !== undefined) {
        if (!isStoredV2(rec.data)) return { seq: Number(rec.seq), hash: rec.hash };
        // A v2 stream's last record ends its batch (a batch is one transaction): without a seal the store was altered.
        const seal = parseStoredV2(rec.data)?.seal ?? null;
        if (seal === null) throw new Error(`audit store (postgres): the head record of stream ${stream} (seq ${rec.seq}) carries no seal`);
        return { seq: Number(rec.seq), hash: seal };
      }
      // A stream whose every record was pruned continues from the latest prune (never a new genesis).
      const rows = await sql<Array<{ seq: string; hash: string }>>`SELECT seq, hash FROM ${t('audit_prunes')} WHERE stream = ${stream} ORDER BY seq DESC, id DESC LIMIT 1`;
      const r = rows[0];
      return r ? { seq: Number(r.seq), hash: r.hash } : null;
    },
    async lastCheckpoint(stream) {
      const rows = await sql<Array<{ data: string; frontier: string }>>`SELECT data, frontier FROM ${t('audit_checkpoints')} WHERE stream = ${stream} ORDER BY seq DESC, id DESC LIMIT 1`;
      const r = rows[0];
      return r ? { checkpoint: JSON.parse(r.data) as Checkpoint, frontier: JSON.parse(r.frontier) as StoredCheckpoint['frontier'] } : null;
    },
    async leavesAfter(stream, after) {
      // v2: the `leaf` member follows `"v":2` (the last canonical member) and the hash column is the leaf already.
      const rows = await sql<Array<{ hash: string; v2: boolean }>>`SELECT hash, strpos(data, ${',"v":2,"leaf":"'}) > 0 AS v2 FROM ${t('audit_records')} WHERE stream = ${stream} AND seq > ${after} ORDER BY seq, id`;
      return rows.map((r) => (r.v2 ? r.hash : leafHex(r.hash)));
    },
    async streams() {
      const rows = await sql<Array<{ stream: string }>>`SELECT DISTINCT stream FROM ${t('audit_records')} UNION SELECT DISTINCT stream FROM ${t('audit_checkpoints')} UNION SELECT DISTINCT stream FROM ${t('audit_archive_anchors')} ORDER BY 1`;
      return rows.map((r) => r.stream);
    },
    async readRaw(stream, afterId, limit) {
      const ahead = readAhead;
      readAhead = null;
      const rows = await (ahead !== null && ahead.stream === stream && ahead.afterId === afterId && ahead.limit === limit && ahead.appends === appends ? ahead.page : page(stream, afterId, limit));
      const n = rows.length;
      if (n === limit && n > 0) {
        // A full page: the caller (the verifier, an export) most likely wants the next one,
        // and the server can read it while the caller checks this one (as the SQLite store
        // does). Never awaited when the caller stops here: its failure is the next call's.
        const next = (rows[n - 1] as { id: number }).id;
        readAhead = { stream, afterId: next, limit, appends, page: page(stream, next, limit) };
        readAhead.page.catch(() => undefined);
      }
      return rows;
    },
    async checkpoints(stream) {
      const rows = await sql<Array<{ data: string }>>`SELECT data FROM ${t('audit_checkpoints')} WHERE stream = ${stream} ORDER BY id`;
      return rows.map((r) => JSON.parse(r.data) as Checkpoint);
    },
    async query(q: RecordQuery) {
      const rows = await sql<Array<{ data: string }>>`SELECT data FROM ${t('audit_records')} WHERE true
        ${q.stream !== undefined ? sql`AND stream = ${q.stream}` : sql``}
        ${q.from !== undefined ? sql`AND time >= ${q.from}` : sql``}
        ${q.to !== undefined ? sql`AND time < ${q.to}` : sql``}
        ${q.subject !== undefined ? sql`AND subject = ${q.subject}` : sql``}
        ${q.decision !== undefined ? sql`AND decision = ${q.decision}` : sql``}
        ORDER BY time, id LIMIT ${q.limit}`;
      return rows.map((r) => JSON.parse(r.data) as ChainedRecord);
    },
    async addArchiveAnchor(a) {
      await sql`INSERT INTO ${t('audit_archive_anchors')} (stream, seq, data) VALUES (${a.stream}, ${a.seq}, ${JSON.stringify(a)})`;
    },
    async archiveAnchors(stream) {
      const rows = await sql<Array<{ data: string }>>`SELECT data FROM ${t('audit_archive_anchors')} WHERE stream = ${stream} ORDER BY seq, id`;
      return rows.map((r) => JSON.parse(r.data) as ArchiveAnchor);
    },
    async prune(stream, seq) {
      appends++;
      readAhead = null;
      // The SECURITY DEFINER function (archive-schema.ts): the only way rows are deleted.
      const rows = await sql<Array<{ n: string }>>`SELECT ${sql(schema)}.audit_prune(${stream}, ${seq}) AS n`;
      return Number(rows[0]?.n ?? 0);
    },
    async prunedTo(stream) {
      const rows = await sql<Array<{ data: string }>>`SELECT a.data FROM ${t('audit_archive_anchors')} a
        WHERE a.stream = ${stream} AND a.seq = (SELECT max(seq) FROM ${t('audit_prunes')} WHERE stream = ${stream})
        ORDER BY a.id DESC LIMIT 1`;
      return rows[0] ? (JSON.parse(rows[0].data) as ArchiveAnchor) : null;
    },
    async close() {
      await sql.end({ timeout: 2 });
    },
  };
}
