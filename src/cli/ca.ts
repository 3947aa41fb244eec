/**
 * `gatehouse ca init|issue|trust`: the internal CA from the command line (docs/tls.md).
 * Passwords come from files that only the owner can read (the same rule as every other
 * secret); keys are written with mode 0600.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/units.js';
import { readSecretFile, SecretFileError } from '../config/secrets.js';
import { CaError, initCa, issueCertificate, loadCa, readRootPem } from '../pki/ca.js';
import { UsageError } from './args.js';

const USAGE = `usage:
  gatehouse ca init  --dir DIR --password-file FILE [--root-password-file FILE] [--name CN] [--force]
  gatehouse ca issue --dir DIR --password-file FILE --name NAME [--san DNS]... [--ip IP]... [--uri URI]...
                     [--lifetime 24h] [--client] [--server] [--out PREFIX]
  gatehouse ca trust --dir DIR`;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>): Values {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function str(v: Values, key: string): string {
  const s = v[key];
  if (typeof s !== 'string' || s === '') throw new UsageError(`--${key} is required`);
  return s;
}

async function init(args: string[]): Promise<number> {
  const v = parse(args, {
    dir: { type: 'string' },
    'password-file': { type: 'string' },
    'root-password-file': { type: 'string' },
    name: { type: 'string' },
    force: { type: 'boolean' },
  });
  const dir = str(v, 'dir');
  const password = readSecretFile(str(v, 'password-file'));
  const rootFile = v['root-password-file'];
  const rootPassword = typeof rootFile === 'string' ? readSecretFile(rootFile) : undefined;
  const p = await initCa({ dir, password, rootPassword, commonName: typeof v.name === 'string' ? v.name : undefined, force: v.force === true });
  process.stdout.write(
    `created a CA in ${dir}:\n  ${p.rootCert} (distribute: gatehouse ca trust --dir ${dir})\n  ${p.rootKey} (0600${rootPassword === undefined ? ', unencrypted: move it offline' : ', encrypted'})\n  ${p.intermediateCert}\n  ${p.intermediateKey} (0600, encrypted)\n`,
  );
  return 0;
}

async function issue(args: string[]): Promise<number> {
  const v = parse(args, {
    dir: { type: 'string' },
    'password-file': { type: 'string' },
    name: { type: 'string' },
    san: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    uri: { type: 'string', multiple: true },
    lifetime: { type: 'string' },
    client: { type: 'boolean' },
    server: { type: 'boolean' },
    out: { type: 'string' },
  });
  const dir = str(v, 'dir');
  const name = str(v, 'name');
  const lifetimeMs = typeof v.lifetime === 'string' ? parseDuration(v.lifetime) : undefined;
  if (lifetimeMs === null) throw new UsageError(`--lifetime ${v.lifetime as string}: not a duration (use e.g. 24h, 30m, 90d)`);
  const client = v.client === true;
  // Server usage unless only --client was asked for; both with --client --server.
  const server = v.server === true || !client;
  const ca = await loadCa(dir, readSecretFile(str(v, 'password-file')));
  const out = typeof v.out === 'string' ? v.out : name.replace(/[^A-Za-z0-9._-]/g, '_');
  const issued = await issueCertificate(ca, { name, dnsNames: (v.san as string[] | undefined) ?? [], ips: (v.ip as string[] | undefined) ?? [], uris: (v.uri as string[] | undefined) ?? [], lifetimeMs, client, server });
  writeFileSync(`${out}.crt`, issued.chainPem);
  writeFileSync(`${out}.key`, issued.keyPem, { mode: 0o600 });
  chmodSync(`${out}.key`, 0o600);
  process.stdout.write(`issued ${name} serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}:\n  ${out}.crt (certificate and intermediate)\n  ${out}.key (0600)\n`);
  return 0;
}

function trust(args: string[]): number {
  const v = parse(args, { dir: { type: 'string' } });
  process.stdout.write(readRootPem(str(v, 'dir')));
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'init':
        return await init(rest);
      case 'issue':
        return await issue(rest);
      case 'trust':
        return trust(rest);
      default:
        process.stderr.write(`${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse ca: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof CaError || err instanceof SecretFileError) {
      process.stderr.write(`gatehouse ca: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
