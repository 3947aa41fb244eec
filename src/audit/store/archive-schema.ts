/**
 * The audit store's archive tables (docs/audit.md, "Archive"), for both stores:
 *
 * - `audit_archive_anchors`: one row per archived segment — "the stream is archived and
 *   read back verified through seq N, whose hash is H" (with the signed checkpoint at N,
 *   the Merkle frontier there and where the segment's objects are). Append-only.
 * - `audit_prunes`: one row per prune — "records up to seq N were deleted locally; they
 *   are in the archive, anchored at N". Append-only. The verifier starts a pruned stream
 *   from the anchor named by the latest prune, and a restart takes the stream's head from
 *   it when every record was pruned.
 *
 * The append-only triggers on `audit_records` / `audit_checkpoints` refuse a DELETE unless
 * a prune row covers the row (records up to and including N, checkpoints before N — the
 * one at N stays, it vouches for the anchor and holds the writer's Merkle frontier). So a
 * record can only go after a prune was recorded for it, and a prune only after an anchor.
 *
 * PostgreSQL: the writer role gets INSERT and SELECT on the anchors (the gateway records
 * its progress) and SELECT on the prunes; neither it nor anyone but the owner can insert a
 * prune row or DELETE. Pruning is the SECURITY DEFINER function `audit_prune(stream, seq)`,
 * executable only by the NOLOGIN role `<schema>_audit_pruner` (and the owner): it deletes
 * nothing without an anchor at exactly that seq whose hash is the chain value there (a v1
 * record's hash, the seal of a v2 batch ending there).
 */

export const SQLITE_ARCHIVE_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_archive_anchors (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_archive_anchors_stream_seq ON audit_archive_anchors (stream, seq);
CREATE TABLE IF NOT EXISTS audit_prunes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL,
  time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_prunes_stream_seq ON audit_prunes (stream, seq);
CREATE TRIGGER IF NOT EXISTS audit_archive_anchors_no_update BEFORE UPDATE ON audit_archive_anchors BEGIN SELECT RAISE(ABORT, 'audit archive anchors are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_archive_anchors_no_delete BEFORE DELETE ON audit_archive_anchors BEGIN SELECT RAISE(ABORT, 'audit archive anchors are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_prunes_no_update BEFORE UPDATE ON audit_prunes BEGIN SELECT RAISE(ABORT, 'audit prunes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_prunes_no_delete BEFORE DELETE ON audit_prunes BEGIN SELECT RAISE(ABORT, 'audit prunes are append-only'); END;
BEGIN;
DROP TRIGGER IF EXISTS audit_records_no_delete;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
  WHEN NOT EXISTS (SELECT 1 FROM audit_prunes p WHERE p.stream = OLD.stream AND p.seq >= OLD.seq)
  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
  WHEN NOT EXISTS (SELECT 1 FROM audit_prunes p WHERE p.stream = OLD.stream AND p.seq > OLD.seq)
  BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
COMMIT;
`;

/**
 * Runs after the store's own DDL (it replaces the append-only trigger function's body), in
 * `gatehouse audit migrate` only; the writer's and reader's grants on these tables are
 * given with the others (postgres.ts).
 */
export function postgresArchiveSchema(schema: string): string {
  const s = schema;
  return `
CREATE TABLE IF NOT EXISTS ${s}.audit_archive_anchors (
  id BIGSERIAL PRIMARY KEY,
  stream TEXT NOT NULL,
  seq BIGINT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_archive_anchors_stream_seq ON ${s}.audit_archive_anchors (stream, seq);
CREATE TABLE IF NOT EXISTS ${s}.audit_prunes (
  id BIGSERIAL PRIMARY KEY,
  stream TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL,
  time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_prunes_stream_seq ON ${s}.audit_prunes (stream, seq);
CREATE OR REPLACE FUNCTION ${s}.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A DELETE is let through only for rows a recorded prune covers (audit_prune below).
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_records'
     AND EXISTS (SELECT 1 FROM ${s}.audit_prunes p WHERE p.stream = OLD.stream AND p.seq >= OLD.seq) THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_checkpoints'
     AND EXISTS (SELECT 1 FROM ${s}.audit_prunes p WHERE p.stream = OLD.stream AND p.seq > OLD.seq) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'gatehouse audit tables are append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'audit_archive_anchors_append_only' AND tgrelid = '${s}.audit_archive_anchors'::regclass) THEN
    CREATE TRIGGER audit_archive_anchors_append_only BEFORE UPDATE OR DELETE ON ${s}.audit_archive_anchors FOR EACH ROW EXECUTE FUNCTION ${s}.audit_append_only();
    CREATE TRIGGER audit_archive_anchors_no_truncate BEFORE TRUNCATE ON ${s}.audit_archive_anchors FOR EACH STATEMENT EXECUTE FUNCTION ${s}.audit_append_only();
    CREATE TRIGGER audit_prunes_append_only BEFORE UPDATE OR DELETE ON ${s}.audit_prunes FOR EACH ROW EXECUTE FUNCTION ${s}.audit_append_only();
    CREATE TRIGGER audit_prunes_no_truncate BEFORE TRUNCATE ON ${s}.audit_prunes FOR EACH STATEMENT EXECUTE FUNCTION ${s}.audit_append_only();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${s}_audit_pruner') THEN
    CREATE ROLE ${s}_audit_pruner NOLOGIN;
  END IF;
END $$;
CREATE OR REPLACE FUNCTION ${s}.audit_prune(p_stream TEXT, p_seq BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a TEXT;
  h TEXT;
  last BIGINT;
  n BIGINT;
BEGIN
  SELECT data INTO a FROM ${s}.audit_archive_anchors WHERE stream = p_stream AND seq = p_seq ORDER BY id DESC LIMIT 1;
  IF a IS NULL THEN
    RAISE EXCEPTION 'no archive anchor for stream % at seq %: nothing is pruned that was not archived', p_stream, p_seq;
  END IF;
  -- The chain value at p_seq: a v1 record's hash; a v2 record's seal ('' when it does not end a batch).
  SELECT CASE WHEN strpos(data, ',"v":2,"leaf":"') > 0
      THEN coalesce(substring(data from '"seal":"([0-9a-f]{64})","seal_first":[0-9]+[}]$'), '')
      ELSE hash END
    INTO h FROM ${s}.audit_records WHERE stream = p_stream AND seq = p_seq ORDER BY id LIMIT 1;
  IF h IS NOT NULL AND h <> (a::json ->> 'hash') THEN
    RAISE EXCEPTION 'the archive anchor at seq % does not match the stored record', p_seq;
  END IF;
  SELECT max(seq) INTO last FROM ${s}.audit_prunes WHERE stream = p_stream;
  IF last IS NOT NULL AND last >= p_seq THEN
    RETURN 0;
  END IF;
  INSERT INTO ${s}.audit_prunes (stream, seq, hash, time) VALUES (p_stream, p_seq, a::json ->> 'hash', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  DELETE FROM ${s}.audit_records WHERE stream = p_stream AND seq <= p_seq;
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM ${s}.audit_checkpoints WHERE stream = p_stream AND seq < p_seq;
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION ${s}.audit_prune(TEXT, BIGINT) FROM PUBLIC;
GRANT USAGE ON SCHEMA ${s} TO ${s}_audit_pruner;
GRANT EXECUTE ON FUNCTION ${s}.audit_prune(TEXT, BIGINT) TO ${s}_audit_pruner;
`;
}
