/**
 * `gatehouse token issue --key FILE --kid ID --sub S --type agent|human --iss ISS [--role R]
 *    [--domain D] [--agent A] [--ttl 15m] [--aud AUD] [--config FILE]`
 * `gatehouse token revoke --config FILE (--jti ID | --jti-sha256 HEX [--exp EPOCH_S] | --subject S [--before TIME])`
 *
 * `issue` reads the private key (a secret file: mode 0600); the serving gateway never
 * does. `revoke` writes to the store the config names (SQLite in state.dir, or Redis),
 * through the same store code the gateway reads with.
 */
import { resolve } from 'node:path';
import { CONFIG, CONFIG_REQUIRED, parseCommand, type CommandSpec, type ParsedCommand } from './args.js';
import { ConfigError, formatProblems, loadConfig, type LoadedConfig } from '../config/load.js';
import { readSecretFile, SecretFileError } from '../config/secrets.js';
import { parseDuration } from '../config/units.js';
import { DEFAULT_CLAIMS, issueToken, IssueInputError, loadPrivateKey, type IssueAlg } from '../identity/issue.js';
import { jtiRevocation, RevocationInputError, subjectRevocation } from '../identity/revoke.js';
import { openIdentityStores } from '../identity/services.js';

export const SPEC: CommandSpec = {
  name: 'token',
  summary: 'Issue or revoke tokens gatehouse verifies (docs/identity.md).',
  subcommands: {
    issue: {
      usage: 'gatehouse token issue --key FILE --kid ID --sub SUBJECT --type agent|human --iss ISSUER [--role R] [--domain D] [--agent A] [--ttl 15m] [--aud AUD] [--alg ALG] [--config FILE]',
      summary: 'sign a token with a private key (a secret file) and print it',
      options: {
        key: { type: 'string', value: 'FILE', required: true, description: 'the private key (mode 0600)' },
        kid: { type: 'string', value: 'ID', required: true, description: 'its key id' },
        sub: { type: 'string', value: 'SUBJECT', required: true, description: 'the subject' },
        type: { type: 'string', value: 'agent|human', required: true, description: 'the identity type' },
        iss: { type: 'string', value: 'ISSUER', required: true, description: 'the issuer' },
        role: { type: 'string', value: 'R', description: 'role claim' },
        domain: { type: 'string', value: 'D', description: 'domain claim' },
        agent: { type: 'string', value: 'A', description: 'agent claim' },
        ttl: { type: 'string', duration: true, description: 'lifetime (default 15m; at most revocation.max_token_lifetime)' },
        aud: { type: 'string', value: 'AUD', description: 'audience' },
        alg: { type: 'string', value: 'ALG', description: 'RS256, ES256 or EdDSA (default: from the key)' },
        config: { ...CONFIG, description: 'take claim names and the lifetime bound from this config' },
      },
    },
    revoke: {
      usage: 'gatehouse token revoke --config FILE (--jti ID | --jti-sha256 HEX [--exp EPOCH_SECONDS] | --subject S [--before TIME])',
      summary: 'revoke one token (by jti) or every token of a subject issued before a time',
      options: {
        config: CONFIG_REQUIRED,
        jti: { type: 'string', value: 'ID', description: 'the token id' },
        'jti-sha256': { type: 'string', value: 'HEX', description: 'the SHA-256 of the token id' },
        exp: { type: 'string', value: 'EPOCH_SECONDS', description: 'the token expiry (keeps the entry no longer than needed)' },
        subject: { type: 'string', value: 'S', description: 'revoke every token of this subject' },
        before: { type: 'string', value: 'TIME', description: 'issued before: epoch seconds, an ISO 8601 time, or a duration ago (30s, 5m, 1h, 1d)' },
      },
    },
  },
};

class Usage extends Error {}

function load(file: string): LoadedConfig {
  return loadConfig(file);
}

async function issue(p: ParsedCommand): Promise<number> {
  const v = p.values as Record<string, string | undefined>;
  const ms = p.durations.ttl;
  const ttl = ms === undefined ? undefined : Math.floor(ms / 1000);
  const cfg = v.config !== undefined ? load(v.config).config : null;
  const key = loadPrivateKey(readSecretFile(resolve(v.key as string)));
  const out = await issueToken(
    key,
    { sub: v.sub as string, type: v.type as 'agent' | 'human', role: v.role, domain: v.domain, agent: v.agent, ttl, aud: v.aud, iss: v.iss as string, kid: v.kid as string, alg: v.alg as IssueAlg | undefined },
    { maxTtlS: Math.floor((cfg?.revocation.max_token_lifetime ?? 86_400_000) / 1000), claims: cfg?.auth.claims ?? DEFAULT_CLAIMS },
  );
  process.stdout.write(`${out.token}\n`);
  process.stderr.write(`jti ${out.jti}, expires ${new Date(out.exp * 1000).toISOString()}\n`);
  return 0;
}

async function revoke(p: ParsedCommand): Promise<number> {
  const v = p.values as Record<string, string | undefined> & { config: string };
  if ((v.subject !== undefined) === (v.jti !== undefined || v['jti-sha256'] !== undefined)) throw new Usage('give either --jti/--jti-sha256 or --subject');
  const loaded = load(v.config);
  const now = Date.now();
  let entry;
  if (v.subject !== undefined) {
    let before: number | undefined;
    if (v.before !== undefined) {
      // Epoch seconds, an ISO 8601 time, or a duration back from now (1h: tokens issued in the last hour stay valid).
      const ago = /^\d+(\.\d+)?$/.test(v.before) ? null : parseDuration(v.before);
      before = /^\d+(\.\d+)?$/.test(v.before) ? Number(v.before) * 1000 : ago !== null ? now - ago : Date.parse(v.before);
      if (!Number.isFinite(before)) throw new Usage('--before must be epoch seconds, an ISO 8601 time or a duration ago (30s, 5m, 1h, 1d)');
    }
    entry = subjectRevocation(loaded.config, v.subject, before, now);
  } else {
    entry = jtiRevocation(loaded.config, { jti: v.jti, jtiSha256: v['jti-sha256'], exp: v.exp !== undefined ? Number(v.exp) : undefined }, now);
  }
  const stores = openIdentityStores(loaded.config, loaded.dir);
  try {
    await stores.ready();
    await stores.revocations.add(entry);
  } finally {
    await stores.close();
  }
  process.stdout.write(`${JSON.stringify({ revoked: entry })}\n`);
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  try {
    return p.sub === 'issue' ? await issue(p) : await revoke(p);
  } catch (err) {
    if (err instanceof Usage || err instanceof IssueInputError || err instanceof RevocationInputError) return p.usageError((err as Error).message);
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    if (err instanceof SecretFileError) {
      process.stderr.write(`gatehouse token: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse token: ${(err as Error).message}\n`);
    return 1;
  }
}
