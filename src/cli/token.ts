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
import { parseArgs } from 'node:util';
import { ConfigError, formatProblems, loadConfig, type LoadedConfig } from '../config/load.js';
import { readSecretFile, SecretFileError } from '../config/secrets.js';
import { parseDuration } from '../config/units.js';
import { DEFAULT_CLAIMS, issueToken, IssueInputError, loadPrivateKey, type IssueAlg } from '../identity/issue.js';
import { jtiRevocation, RevocationInputError, subjectRevocation } from '../identity/revoke.js';
import { openIdentityStores } from '../identity/services.js';

const USAGE = `usage: gatehouse token issue --key FILE --kid ID --sub SUBJECT --type agent|human --iss ISSUER [--role R] [--domain D] [--agent A] [--ttl 15m] [--aud AUD] [--config FILE]
       gatehouse token revoke --config FILE (--jti ID | --jti-sha256 HEX [--exp EPOCH_SECONDS] | --subject S [--before TIME])`;

class Usage extends Error {}

function load(file: string): LoadedConfig {
  return loadConfig(file);
}

async function issue(args: string[]): Promise<number> {
  const v = parseArgs({
    args,
    options: Object.fromEntries(['key', 'kid', 'sub', 'type', 'iss', 'role', 'domain', 'agent', 'ttl', 'aud', 'config', 'alg'].map((k) => [k, { type: 'string' as const }])),
    strict: true,
  }).values as Record<string, string | undefined>;
  for (const k of ['key', 'kid', 'sub', 'type', 'iss']) if (!v[k]) throw new Usage(`--${k} is required`);
  let ttl: number | undefined;
  if (v.ttl !== undefined) {
    const ms = parseDuration(v.ttl);
    if (ms === null) throw new Usage('--ttl must be a duration such as 15m or 1h');
    ttl = Math.floor(ms / 1000);
  }
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

async function revoke(args: string[]): Promise<number> {
  const v = parseArgs({ args, options: Object.fromEntries(['config', 'jti', 'jti-sha256', 'exp', 'subject', 'before'].map((k) => [k, { type: 'string' as const }])), strict: true }).values as Record<string, string | undefined>;
  if (!v.config) throw new Usage('--config FILE is required');
  if ((v.subject !== undefined) === (v.jti !== undefined || v['jti-sha256'] !== undefined)) throw new Usage('give either --jti/--jti-sha256 or --subject');
  const loaded = load(v.config);
  const now = Date.now();
  let entry;
  if (v.subject !== undefined) {
    let before: number | undefined;
    if (v.before !== undefined) {
      before = /^\d+(\.\d+)?$/.test(v.before) ? Number(v.before) * 1000 : Date.parse(v.before);
      if (!Number.isFinite(before)) throw new Usage('--before must be epoch seconds or an ISO 8601 time');
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
  const [sub, ...rest] = args;
  try {
    if (sub === 'issue') return await issue(rest);
    if (sub === 'revoke') return await revoke(rest);
    throw new Usage('unknown subcommand');
  } catch (err) {
    if (err instanceof Usage || err instanceof IssueInputError || err instanceof RevocationInputError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`gatehouse token: ${(err as Error).message}\n${USAGE}\n`);
      return 2;
    }
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
