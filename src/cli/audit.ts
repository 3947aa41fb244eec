/**
 * `gatehouse audit <verify|export|keys>`:
 *
 *   audit verify --config FILE                      every stream of the configured store
 *   audit verify --export FILE [--public-key PEM] [--config FILE]
 *                                                   an export; MACs checked only with the
 *                                                   config's keyring, signatures with the key
 *   audit export --config FILE --out FILE [--stream ID]
 *   audit keys generate --private FILE --public FILE   Ed25519 checkpoint key pair
 *   audit keys generate --hmac FILE                    a random 32-byte HMAC key (hex)
 *
 * Exit codes: 0 ok, 1 problems found (or an error), 2 usage.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPublicKey, generateCheckpointKeys } from '../audit/checkpoint.js';
import { loadAuditKeys, openAuditStore } from '../audit/service.js';
import { exportStore, verifyExport, verifyStore } from '../audit/sources.js';
import { formatReport, type StreamReport } from '../audit/verify.js';
import type { Keyring } from '../audit/keyring.js';
import { ConfigError, formatProblems, loadConfig, type LoadedConfig } from '../config/load.js';

const USAGE = `usage:
  gatehouse audit verify --config FILE
  gatehouse audit verify --export FILE [--public-key PEM] [--config FILE]
  gatehouse audit export --config FILE --out FILE [--stream ID]
  gatehouse audit keys generate --private FILE --public FILE
  gatehouse audit keys generate --hmac FILE`;

function usage(msg: string): number {
  process.stderr.write(`gatehouse audit: ${msg}\n${USAGE}\n`);
  return 2;
}

function load(file: string): LoadedConfig {
  return loadConfig(file);
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    const p = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        export: { type: 'string' },
        'public-key': { type: 'string' },
        out: { type: 'string' },
        stream: { type: 'string' },
        private: { type: 'string' },
        public: { type: 'string' },
        hmac: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
    values = p.values;
    positionals = p.positionals;
  } catch (err) {
    return usage((err as Error).message);
  }
  try {
    if (sub === 'verify') return await verify(values);
    if (sub === 'export') return await exportCmd(values);
    if (sub === 'keys' && positionals[0] === 'generate') return keys(values);
    return usage(sub === undefined ? 'a subcommand is required' : `unknown subcommand ${JSON.stringify(sub)}`);
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
  if (reports.length === 0) process.stdout.write('no audit streams found\n');
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
  if (typeof v.export === 'string') return print(await verifyExport(v.export, { keyring, publicKey: pub }));
  if (loaded === null) return usage('--config FILE or --export FILE is required');
  const store = openAuditStore(loaded.config, loaded.dir);
  try {
    await store.init();
    return print(await verifyStore(store, { keyring, publicKey: pub }));
  } finally {
    await store.close();
  }
}

async function exportCmd(v: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof v.config !== 'string' || typeof v.out !== 'string') return usage('--config FILE and --out FILE are required');
  const loaded = load(v.config);
  const store = openAuditStore(loaded.config, loaded.dir);
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
