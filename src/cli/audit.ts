/**
 * `gatehouse audit <verify|export|keys>`:
 *
 *   audit migrate --config FILE                     create/upgrade the store's schema (PostgreSQL: as its owner)
 *   audit verify --config FILE [--sequential | --workers N]
 *                                                   every stream of the configured store (read-only)
 *   audit verify --export FILE [--public-key PEM] [--config FILE] [--sequential | --workers N]
 *                                                   an export; MACs checked only with the
 *                                                   config's keyring, signatures with the key
 *                                                   (v2 streams are checked by worker threads
 *                                                   first; the reports are the sequential ones)
 *   audit verify --archive s3://BUCKET/PREFIX|DIR [--config FILE] [--public-key PEM]
 *                [--endpoint URL --region R --access-key-id-file F --secret-access-key-file F --ca-file F]
 *                                                   an archive on its own (docs/audit.md "Archive")
 *   audit prune --config FILE [--dry-run]           prune archived records older than keep_local
 *   audit prove --config FILE --record STREAM:SEQ [--checkpoint SEQ] [--out FILE]
 *                                                   an inclusion proof against a signed checkpoint
 *   audit prove --config FILE --consistency --stream ID --from SEQ|CHECKPOINT.json [--to SEQ] [--out FILE]
 *                                                   a consistency proof between two checkpoints
 *   audit prove --archive s3://BUCKET/PREFIX|DIR [--config FILE] [S3 flags as for verify] ...
 *                                                   either proof from an archive (records pruned
 *                                                   locally), followed by the store's newer records
 *   audit verify --proof FILE --public-key PEM [--checkpoint HELD.json]
 *                                                   checks a proof offline
 *   audit export --config FILE --out FILE [--stream ID]
 *   audit keys generate --private FILE --public FILE   Ed25519 checkpoint key pair
 *   audit keys generate --hmac FILE                    a random 32-byte HMAC key (hex)
 *
 * Exit codes: 0 ok, 1 problems found (or an error), 2 usage.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CONFIG, CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';
import { loadPublicKey, generateCheckpointKeys } from '../audit/checkpoint.js';
import { loadAuditKeys, openAuditStore } from '../audit/service.js';
import { exportStore, verifyExport, verifyStore } from '../audit/sources.js';
import { formatReport, type StreamReport } from '../audit/verify.js';
import { storeSource, verifyExportParallel, verifyStoreParallel } from '../audit/verify-parallel.js';
import type { Keyring } from '../audit/keyring.js';
import { ConfigError, formatProblems, loadConfig, loadConfigSections, type LoadedConfig } from '../config/load.js';
import { createDirectoryTarget } from '../audit/archive/directory-target.js';
import { openArchiveTarget, parseArchiveLocation, s3Connection, s3Target, type S3Connection } from '../audit/archive/open.js';
import type { ArchiveTarget } from '../audit/archive/target.js';
import { formatArchiveReport, verifyArchive, type ArchiveStreamReport } from '../audit/archive/verify-archive.js';
import type { AuditStore } from '../audit/store/types.js';
import { AUDIT_SCHEMA_VERSION } from '../audit/store/postgres.js';
import { readStreamState } from '../audit/stream-state.js';
import { proveConsistency, proveInclusion, storeProofSource, verifyProof, type Proof, type ProofSource } from '../audit/proof.js';
import { archiveProofSource } from '../audit/archive/proof-source.js';
import type { Checkpoint } from '../audit/checkpoint.js';
import { stateDir } from '../stores/postgres-client.js';

/** Where an S3 archive is and how to reach it (audit verify --archive, audit prove --archive). */
const S3_OPTIONS = {
  endpoint: { type: 'string', value: 'URL', description: 'S3 endpoint' },
  region: { type: 'string', value: 'R', description: 'S3 region' },
  'access-key-id-file': { type: 'string', value: 'F', description: 'file with the S3 access key id' },
  'secret-access-key-file': { type: 'string', value: 'F', description: 'file with the S3 secret key (mode 0600)' },
  'ca-file': { type: 'string', value: 'F', description: 'CA for the S3 endpoint' },
} as const;

export const SPEC: CommandSpec = {
  name: 'audit',
  summary: 'Migrate, verify or export the audit trail, prove records and checkpoints, prune archived records, generate its keys (docs/audit.md).',
  subcommands: {
    verify: {
      usage: `gatehouse audit verify --config FILE [--sequential | --workers N]
       gatehouse audit verify --export FILE [--public-key PEM] [--config FILE] [--sequential | --workers N]
       gatehouse audit verify --proof FILE --public-key PEM [--checkpoint HELD.json]
       gatehouse audit verify --archive s3://BUCKET/PREFIX|DIR [--config FILE] [--public-key PEM] [--stream ID]
           [--endpoint URL] [--region R] [--access-key-id-file F --secret-access-key-file F] [--ca-file F]`,
      summary: 'verify every stream of the configured store, an export, or an archive',
      options: {
        config: CONFIG,
        export: { type: 'string', value: 'FILE', description: 'an export file to verify' },
        proof: { type: 'string', value: 'FILE', description: 'a proof from audit prove, checked offline' },
        checkpoint: { type: 'string', value: 'HELD.json', description: 'with --proof: a checkpoint you hold; the proof must start from it' },
        archive: { type: 'string', value: 's3://BUCKET/PREFIX|DIR', description: 'an archive to verify' },
        'public-key': { type: 'string', value: 'PEM', description: 'the checkpoint public key' },
        stream: { type: 'string', value: 'ID', description: 'one stream' },
        ...S3_OPTIONS,
        sequential: { type: 'boolean', description: 'a store or export: verify on this thread only, without worker threads (same reports)' },
        workers: { type: 'string', value: 'N', description: 'a store or export: worker threads for v2 streams (default: the available CPUs)' },
      },
    },
    migrate: {
      usage: 'gatehouse audit migrate --config FILE',
      summary: "create or upgrade the audit store's schema (PostgreSQL: run as the schema owner; the gateway never runs DDL); reads only state, audit and ca from the config",
      options: { config: CONFIG_REQUIRED },
    },
    prove: {
      usage: `gatehouse audit prove --config FILE --record STREAM:SEQ [--checkpoint SEQ] [--out FILE]
       gatehouse audit prove --config FILE --consistency --stream ID --from SEQ|CHECKPOINT.json [--to SEQ] [--out FILE]
       gatehouse audit prove --archive s3://BUCKET/PREFIX|DIR [--config FILE] (--record ... | --consistency ...)
           [--endpoint URL] [--region R] [--access-key-id-file F --secret-access-key-file F] [--ca-file F]`,
      summary: 'an RFC 9162 inclusion proof for a record, or a consistency proof between two checkpoints (from the store, an archive, or both)',
      options: {
        config: CONFIG,
        archive: { type: 'string', value: 's3://BUCKET/PREFIX|DIR', description: 'prove from this archive (then the store\'s newer records, with --config)' },
        ...S3_OPTIONS,
        record: { type: 'string', value: 'STREAM:SEQ', description: 'the record to prove' },
        checkpoint: { type: 'string', value: 'SEQ', description: 'the checkpoint to prove against (default: the latest)' },
        consistency: { type: 'boolean', description: 'a consistency proof instead' },
        stream: { type: 'string', value: 'ID', description: 'the stream (with --consistency)' },
        from: { type: 'string', value: 'SEQ|CHECKPOINT.json', description: 'the older checkpoint: a seq, or a checkpoint you hold' },
        to: { type: 'string', value: 'SEQ', description: 'the newer checkpoint (default: the latest)' },
        out: { type: 'string', value: 'FILE', description: 'write the proof here (default: stdout)' },
      },
    },
    export: {
      usage: 'gatehouse audit export --config FILE --out FILE [--stream ID]',
      summary: 'export the store to a file that verifies offline',
      options: { config: CONFIG_REQUIRED, out: { type: 'string', value: 'FILE', required: true, description: 'the export file' }, stream: { type: 'string', value: 'ID', description: 'one stream' } },
    },
    prune: {
      usage: 'gatehouse audit prune --config FILE [--dry-run]',
      summary: 'prune archived records older than audit.archive.keep_local (after the archive verifies)',
      options: { config: CONFIG_REQUIRED, 'dry-run': { type: 'boolean', description: 'say what would be pruned' } },
    },
    keys: {
      usage: `gatehouse audit keys generate --private FILE --public FILE
       gatehouse audit keys generate --hmac FILE`,
      summary: 'generate an Ed25519 checkpoint key pair, or a 32-byte HMAC key',
      positionals: ['generate'],
      options: {
        private: { type: 'string', value: 'FILE', description: 'the private key file (written 0600)' },
        public: { type: 'string', value: 'FILE', description: 'the public key file' },
        hmac: { type: 'string', value: 'FILE', description: 'an HMAC key file (written 0600)' },
      },
    },
  },
};

let currentUsage: ((msg: string) => number) | null = null;

function usage(msg: string): number {
  return currentUsage?.(msg) ?? 2;
}

function load(file: string): LoadedConfig {
  return loadConfig(file);
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  currentUsage = p.usageError;
  const sub = p.sub;
  const values = p.values as Record<string, string | boolean | undefined>;
  if (sub === 'keys' && p.positionals[0] !== 'generate') return usage(`unknown keys subcommand ${JSON.stringify(p.positionals[0])} (gatehouse audit keys generate ...)`);
  try {
    if (sub === 'verify') return await verify(values);
    if (sub === 'migrate') return await migrateCmd(values);
    if (sub === 'prove') return await proveCmd(values);
    if (sub === 'export') return await exportCmd(values);
    if (sub === 'prune') return await pruneCmd(values);
    return keys(values);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse audit: ${(err as Error).message}\n`);
    return 1;
  }
}

function print(reports: StreamReport[]): number {
  if (reports.length === 0) {
    // Nothing to verify proves nothing: a wiped store or an empty export must not pass.
    process.stdout.write('FAILED: no audit streams found\n');
    return 1;
  }
  for (const r of reports) process.stdout.write(formatReport(r) + '\n');
  const bad = reports.filter((r) => r.problems.length > 0).length;
  process.stdout.write(bad === 0 ? `OK: ${reports.length} stream(s) verified\n` : `FAILED: ${bad} of ${reports.length} stream(s) have problems\n`);
  return bad === 0 ? 0 : 1;
}

async function verify(v: Record<string, string | boolean | undefined>): Promise<number> {
  let keyring: Keyring | null = null;
  let pub: KeyObject | null = null;
  let loaded: LoadedConfig | null = null;
  if (typeof v.config === 'string') {
    loaded = load(v.config);
    const k = loadAuditKeys(loaded.config.audit, loaded.dir);
    keyring = k.keyring;
    pub = k.signer?.publicKey ?? null;
  }
  if (typeof v['public-key'] === 'string') pub = loadPublicKey(readFileSync(v['public-key'], 'utf8'));
  if (typeof v.proof === 'string') return verifyProofCmd(v.proof, pub, typeof v.checkpoint === 'string' ? v.checkpoint : null);
  let workers: number | undefined;
  if (typeof v.workers === 'string') {
    workers = Number(v.workers);
    if (!Number.isSafeInteger(workers) || workers < 1 || workers > 64) return usage('--workers must be a whole number from 1 to 64');
    if (v.sequential === true) return usage('--sequential and --workers exclude each other');
  }
  const parallel = v.sequential !== true;
  if (typeof v.export === 'string') return print(parallel ? await verifyExportParallel(v.export, { keyring, publicKey: pub }, { workers }) : await verifyExport(v.export, { keyring, publicKey: pub }));
  if (typeof v.archive === 'string') return verifyArchiveCmd(v, v.archive, loaded, keyring, pub);
  if (loaded === null) return usage('--config FILE or --export FILE is required');
  // Read-only: a missing SQLite file or PostgreSQL schema is an error, never created.
  const store = openAuditStore(loaded.config, loaded.dir, { readOnly: true });
  try {
    await store.init();
    // The instance's own stream must exist, and a crash it left undeclared is named.
    const state = readStreamState(stateDir(loaded.config.state.dir, loaded.dir));
    const known = new Set<string>();
    if (state !== null) known.add(state.stream);
    const opts = { keyring, publicKey: pub };
    const knownStreams = { streams: [...known], state };
    return print(parallel ? await verifyStoreParallel(store, storeSource(loaded.config, loaded.dir), opts, knownStreams, { workers }) : await verifyStore(store, opts, knownStreams));
  } finally {
    await store.close();
  }
}

/**
 * `audit migrate`: the only command that changes the store's schema. PostgreSQL: run it as
 * the schema's owner; the gateway (writer role) and verify/export (reader role) never run
 * DDL and refuse a schema that needs migrating (docs/audit.md, "Roles").
 */
async function migrateCmd(v: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof v.config !== 'string') return usage('--config FILE is required');
  // Only the store's settings: the owner's config need not hold the gateway's sites and secrets.
  const loaded = loadConfigSections(v.config, ['state', 'audit', 'ca']);
  const store = openAuditStore(loaded.config, loaded.dir);
  try {
    await store.migrate();
    await store.init();
    const where = loaded.config.audit.store === 'postgres' ? `PostgreSQL schema ${loaded.config.state.postgres?.schema ?? ''}` : 'SQLite';
    process.stdout.write(`audit store migrated (${where}, schema version ${AUDIT_SCHEMA_VERSION})\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function exportCmd(v: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof v.config !== 'string' || typeof v.out !== 'string') return usage('--config FILE and --out FILE are required');
  const loaded = load(v.config);
  const store = openAuditStore(loaded.config, loaded.dir, { readOnly: true });
  try {
    await store.init();
    const n = await exportStore(store, v.out, typeof v.stream === 'string' ? [v.stream] : undefined);
    process.stdout.write(`exported ${n.records} record(s) and ${n.checkpoints} checkpoint(s) to ${v.out}\n`);
    if (loaded.config.audit.checkpoint_key_file !== undefined) {
      const k = loadAuditKeys(loaded.config.audit, loaded.dir);
      const pem = (k.signer?.publicKey as KeyObject).export({ format: 'pem', type: 'spki' }) as string;
      process.stdout.write(`verify offline with the checkpoint public key:\n${pem}`);
    }
    return 0;
  } finally {
    await store.close();
  }
}

function keys(v: Record<string, string | boolean | undefined>): number {
  if (typeof v.hmac === 'string') {
    writeFileSync(resolve(v.hmac), randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    process.stdout.write(`wrote a 32-byte HMAC key to ${v.hmac} (mode 0600)\n`);
    return 0;
  }
  if (typeof v.private !== 'string' || typeof v.public !== 'string') return usage('--private FILE and --public FILE (or --hmac FILE) are required');
  const id = generateCheckpointKeys(resolve(v.private), resolve(v.public));
  process.stdout.write(`wrote the Ed25519 checkpoint key pair: ${v.private} (private, mode 0600), ${v.public} (public); key_id ${id}\n`);
  return 0;
}

/** The archive named on the command line; S3 connection settings from the flags, else from the config. */
async function archiveTarget(v: Record<string, string | boolean | undefined>, location: string, loaded: LoadedConfig | null): Promise<ArchiveTarget | string> {
  const loc = parseArchiveLocation(location);
  if (loc.kind === 'directory') return createDirectoryTarget(resolve(loc.path));
  const idFile = v['access-key-id-file'];
  const secretFile = v['secret-access-key-file'];
  if (typeof idFile === 'string' || typeof secretFile === 'string') {
    if (typeof idFile !== 'string' || typeof secretFile !== 'string') return '--access-key-id-file and --secret-access-key-file go together';
    const conn: S3Connection = {
      endpoint: typeof v.endpoint === 'string' ? v.endpoint : undefined,
      region: typeof v.region === 'string' ? v.region : undefined,
      accessKeyIdFile: idFile,
      secretAccessKeyFile: secretFile,
      caFile: typeof v['ca-file'] === 'string' ? v['ca-file'] : undefined,
    };
    return s3Target(loc.bucket, loc.prefix, conn, process.cwd());
  }
  const conn = loaded?.config.audit.archive !== undefined ? s3Connection(loaded.config.audit.archive) : null;
  if (conn === null || loaded === null) return 'an s3:// archive needs --access-key-id-file and --secret-access-key-file (files, mode 0600), or --config with audit.archive.s3';
  return s3Target(loc.bucket, loc.prefix, conn, loaded.dir);
}

function printArchive(reports: ArchiveStreamReport[]): number {
  if (reports.length === 0) {
    // An archive with nothing in it proves nothing: a wiped bucket must not pass.
    process.stdout.write('FAILED: no audit streams found in the archive\n');
    return 1;
  }
  for (const r of reports) process.stdout.write(formatArchiveReport(r) + '\n');
  const bad = reports.filter((r) => r.problems.length > 0 || r.records.problems.length > 0).length;
  process.stdout.write(bad === 0 ? `OK: ${reports.length} archived stream(s) verified\n` : `FAILED: ${bad} of ${reports.length} archived stream(s) have problems\n`);
  return bad === 0 ? 0 : 1;
}

async function verifyArchiveCmd(v: Record<string, string | boolean | undefined>, location: string, loaded: LoadedConfig | null, keyring: Keyring | null, pub: KeyObject | null): Promise<number> {
  const target = await archiveTarget(v, location, loaded);
  if (typeof target === 'string') return usage(target);
  let store: AuditStore | null = null;
  try {
    let streams: string[] | undefined = typeof v.stream === 'string' ? [v.stream] : undefined;
    if (loaded !== null) {
      // With the config, what the gateway recorded as archived is checked against the archive too.
      store = openAuditStore(loaded.config, loaded.dir, { readOnly: true });
      await store.init();
      if (streams === undefined) {
        const s = new Set(await target.folders(target.prefix));
        for (const st of await store.streams()) if ((await store.archiveAnchors(st)).length > 0) s.add(st);
        streams = [...s].sort();
      }
    }
    const st = store;
    return printArchive(await verifyArchive(target, { keyring, publicKey: pub, streams, anchors: st === null ? undefined : (s) => st.archiveAnchors(s) }));
  } finally {
    await target.close();
    await store?.close();
  }
}

/**
 * `audit prune`: for each stream with archive anchors, the records of segments older than
 * keep_local are deleted from the store — after the archive of that stream is read back
 * and verified from its first segment (nothing is pruned from a damaged archive). The
 * PostgreSQL role it runs as needs `<schema>_audit_pruner` (or ownership).
 */
async function pruneCmd(v: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof v.config !== 'string') return usage('--config FILE is required');
  const loaded = load(v.config);
  const ar = loaded.config.audit.archive;
  if (ar === undefined) return usage('audit.archive is not configured: nothing is archived, so nothing may be pruned');
  if (ar.keep_local === undefined) {
    process.stderr.write('gatehouse audit prune: audit.archive.keep_local is not set: archived records are kept locally for ever\n');
    return 1;
  }
  const { keyring, signer } = loadAuditKeys(loaded.config.audit, loaded.dir);
  const store = openAuditStore(loaded.config, loaded.dir);
  let target: ArchiveTarget | null = null;
  let failed = false;
  try {
    target = await openArchiveTarget(ar, loaded.dir);
    await store.init();
    for (const s of await store.streams()) {
      const anchors = await store.archiveAnchors(s);
      const pruned = await store.prunedTo(s);
      const cutoff = Date.now() - ar.keep_local;
      const due = anchors.filter((a) => a.seq > (pruned?.seq ?? 0) && Date.parse(a.checkpoint.time) <= cutoff);
      const last = due[due.length - 1];
      if (last === undefined) {
        process.stdout.write(`stream ${s}: nothing to prune (archived through seq ${anchors[anchors.length - 1]?.seq ?? 0}, pruned through seq ${pruned?.seq ?? 0})\n`);
        continue;
      }
      const rep = (await verifyArchive(target, { keyring, publicKey: signer?.publicKey ?? null, streams: [s], anchors: async () => anchors }))[0] as ArchiveStreamReport;
      const bad = rep.problems.length + rep.records.problems.filter((p) => p.kind !== 'gap').length;
      if (bad > 0) {
        failed = true;
        process.stdout.write(`${formatArchiveReport(rep)}\nstream ${s}: NOT pruned: the archive does not verify\n`);
        continue;
      }
      if (v['dry-run'] === true) {
        process.stdout.write(`stream ${s}: would prune seqs ${(pruned?.seq ?? 0) + 1}..${last.seq} (archived in segments ${due[0]?.segment.index}..${last.segment.index}, verified)\n`);
        continue;
      }
      const n = await store.prune(s, last.seq);
      process.stdout.write(`stream ${s}: pruned ${n} record(s) through seq ${last.seq} (archive verified through segment ${last.segment.index})\n`);
    }
    return failed ? 1 : 0;
  } finally {
    await target?.close();
    await store.close();
  }
}

/** A JSON file, or a clear error naming it. */
function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * `audit prove`: an inclusion or a consistency proof, as JSON (stdout or --out). From the
 * store; with --archive from the archive's segments, followed (with --config) by the
 * store's records after them — a stream pruned locally is proved that way.
 */
async function proveCmd(v: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof v.config !== 'string' && typeof v.archive !== 'string') return usage('--config FILE (or --archive s3://BUCKET/PREFIX|DIR) is required');
  const seqArg = (x: string | boolean | undefined, name: string): number | null => {
    if (x === undefined) return null;
    if (typeof x !== 'string' || !/^[1-9][0-9]{0,15}$/.test(x)) throw new Error(`${name} must be a seq (a positive integer)`);
    return Number(x);
  };
  const m = typeof v.record === 'string' ? /^(.+):([1-9][0-9]{0,15})$/.exec(v.record) : null;
  if (v.consistency === true ? typeof v.stream !== 'string' || typeof v.from !== 'string' : m === null) {
    return usage(v.consistency === true ? '--consistency needs --stream ID and --from SEQ|CHECKPOINT.json' : '--record STREAM:SEQ is required (or --consistency)');
  }
  const loaded = typeof v.config === 'string' ? load(v.config) : null;
  let store: AuditStore | null = null;
  let target: ArchiveTarget | null = null;
  let proof: Proof;
  try {
    if (loaded !== null) {
      store = openAuditStore(loaded.config, loaded.dir, { readOnly: true });
      await store.init();
    }
    let source: ProofSource;
    if (typeof v.archive === 'string') {
      const t = await archiveTarget(v, v.archive, loaded);
      if (typeof t === 'string') return usage(t);
      target = t;
      source = archiveProofSource(t, store);
    } else source = storeProofSource(store as AuditStore);
    if (v.consistency === true) {
      const from = /^[0-9]+$/.test(v.from as string) ? (seqArg(v.from, '--from') as number) : (readJson(v.from as string) as Checkpoint);
      proof = await proveConsistency(source, v.stream as string, from, seqArg(v.to, '--to'));
    } else {
      const [, stream, seq] = m as RegExpExecArray;
      proof = await proveInclusion(source, stream as string, Number(seq), seqArg(v.checkpoint, '--checkpoint'));
    }
  } finally {
    await target?.close();
    await store?.close();
  }
  const text = JSON.stringify(proof, null, 2) + '\n';
  if (typeof v.out === 'string') {
    writeFileSync(v.out, text, { mode: 0o644 });
    process.stdout.write(`wrote a ${proof.type} proof to ${v.out}\n`);
  } else process.stdout.write(text);
  return 0;
}

/** `audit verify --proof FILE --public-key PEM [--checkpoint HELD.json]`: offline. */
function verifyProofCmd(file: string, pub: KeyObject | null, held: string | null): number {
  if (pub === null) return usage('--proof needs --public-key PEM (or --config with audit.checkpoint_key_file)');
  const proof = readJson(file) as Proof;
  const problems = verifyProof(proof, pub, held === null ? null : (readJson(held) as Checkpoint));
  if (problems.length === 0) {
    const what =
      proof.type === 'inclusion'
        ? `record ${proof.record.stream}:${proof.record.seq} is in the log under the signed checkpoint at seq ${proof.checkpoint.seq}`
        : `the signed checkpoint at seq ${proof.second.seq} extends the one at seq ${proof.first.seq} (stream ${proof.first.stream})`;
    process.stdout.write(`OK: ${what}\n`);
    return 0;
  }
  for (const p of problems) process.stdout.write(`proof: ${p}\n`);
  process.stdout.write('FAILED: the proof does not hold\n');
  return 1;
}
