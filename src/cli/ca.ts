/**
 * `gatehouse ca init|issue|trust|reencrypt`: the internal CA from the command line (docs/tls.md).
 * Passwords come from files that only the owner can read (the same rule as every other
 * secret); keys are written with mode 0600.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { readSecretFile, SecretFileError } from '../config/secrets.js';
import { CaError, initCa, issueCertificate, loadCa, readRootPem, reencryptCaKeys } from '../pki/ca.js';
import { PBKDF2_ITERATIONS } from '../pki/encrypted-key.js';
import { parseCommand, type CommandSpec, type ParsedCommand, type Values } from './args.js';

const DIR = { type: 'string', value: 'DIR', required: true, description: 'the CA directory' } as const;
const PASSWORD = { type: 'string', value: 'FILE', required: true, description: 'file with the intermediate key password (mode 0600)' } as const;

export const SPEC: CommandSpec = {
  name: 'ca',
  summary: 'The internal CA (docs/tls.md).',
  subcommands: {
    init: {
      usage: 'gatehouse ca init --dir DIR --password-file FILE [--root-password-file FILE] [--name CN] [--force]',
      summary: 'create a root and an intermediate CA in DIR',
      options: {
        dir: DIR,
        'password-file': PASSWORD,
        'root-password-file': { type: 'string', value: 'FILE', description: 'encrypt the root key with this password (else move it offline)' },
        name: { type: 'string', value: 'CN', description: 'the CA common name' },
        force: { type: 'boolean', description: 'replace an existing CA' },
      },
    },
    issue: {
      usage: 'gatehouse ca issue --dir DIR --password-file FILE --name NAME [--san DNS]... [--ip IP]... [--uri URI]... [--lifetime 24h] [--client] [--server] [--out PREFIX]',
      summary: 'issue a certificate from the intermediate',
      options: {
        dir: DIR,
        'password-file': PASSWORD,
        name: { type: 'string', value: 'NAME', required: true, description: 'the certificate name (common name)' },
        san: { type: 'string', value: 'DNS', multiple: true, description: 'a DNS name (repeatable)' },
        ip: { type: 'string', value: 'IP', multiple: true, description: 'an IP address (repeatable)' },
        uri: { type: 'string', value: 'URI', multiple: true, description: 'a URI SAN, e.g. spiffe://... (repeatable)' },
        lifetime: { type: 'string', duration: true, description: 'validity' },
        client: { type: 'boolean', description: 'client usage' },
        server: { type: 'boolean', description: 'server usage (the default unless only --client)' },
        out: { type: 'string', value: 'PREFIX', description: 'write PREFIX.crt and PREFIX.key (default: the name)' },
      },
    },
    trust: {
      usage: 'gatehouse ca trust --dir DIR',
      summary: 'print the root certificate (PEM) to distribute',
      options: { dir: DIR },
    },
    reencrypt: {
      usage: 'gatehouse ca reencrypt --dir DIR --password-file FILE [--root-password-file FILE]',
      summary: 're-encrypt the CA keys with the current parameters (PBKDF2-HMAC-SHA256, 600,000 iterations), same password',
      options: {
        dir: DIR,
        'password-file': PASSWORD,
        'root-password-file': { type: 'string', value: 'FILE', description: 're-encrypt the root key too (when it is in DIR), with this password' },
      },
    },
  },
};

function str(v: Values, key: string): string {
  return v[key] as string;
}

async function init(v: Values): Promise<number> {
  const dir = str(v, 'dir');
  const password = readSecretFile(str(v, 'password-file'));
  const rootFile = v['root-password-file'];
  const rootPassword = typeof rootFile === 'string' ? readSecretFile(rootFile) : undefined;
  const p = await initCa({ dir, password, rootPassword, commonName: typeof v.name === 'string' ? v.name : undefined, force: v.force === true });
  process.stdout.write(
    `created a CA in ${dir}:\n  ${p.rootCert} (distribute: gatehouse ca trust --dir ${dir})\n  ${p.rootKey} (0600${rootPassword === undefined ? ', unencrypted: move it offline' : ', encrypted'})\n  ${p.intermediateCert}\n  ${p.intermediateKey} (0600, encrypted)\n` +
      // The ACME server (docs/acme.md) issues from this CA once the config has an acme_server block.
      `ACME: with \`acme_server: { listen: HOST:PORT }\` in the config, ACME clients use the directory https://HOST:PORT/acme/directory (trust ${p.rootCert}; docs/acme.md)\n`,
  );
  return 0;
}

async function issue(p: ParsedCommand): Promise<number> {
  const v = p.values;
  const dir = str(v, 'dir');
  const name = str(v, 'name');
  const lifetimeMs = p.durations.lifetime;
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

async function reencrypt(v: Values): Promise<number> {
  const rootFile = v['root-password-file'];
  const done = await reencryptCaKeys(str(v, 'dir'), readSecretFile(str(v, 'password-file')), typeof rootFile === 'string' ? readSecretFile(rootFile) : undefined);
  for (const r of done) {
    const b = r.before;
    const was = b === null ? 'unknown parameters' : 'iterations' in b ? `PBKDF2 ${b.prf} ${b.iterations} iterations` : `kdf ${b.kdf}`;
    process.stdout.write(`re-encrypted ${r.file} (was ${was}; now PBKDF2 hmacWithSHA256 ${PBKDF2_ITERATIONS} iterations, AES-256-CBC, same password)\n`);
  }
  return 0;
}

function trust(v: Values): number {
  process.stdout.write(readRootPem(str(v, 'dir')));
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  try {
    if (p.sub === 'init') return await init(p.values);
    if (p.sub === 'issue') return await issue(p);
    if (p.sub === 'reencrypt') return await reencrypt(p.values);
    return trust(p.values);
  } catch (err) {
    if (err instanceof CaError || err instanceof SecretFileError) {
      process.stderr.write(`gatehouse ca: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
