/**
 * `gatehouse identities add|list|suspend|resume|set-limit|remove --config FILE ...`: the
 * identity registry the config names (SQLite in state.dir, or PostgreSQL). Changes reach
 * running gateways by their refresh poll (identities.refresh_interval) or at once by a
 * Redis push when state.store is redis.
 */
import { parseArgs } from 'node:util';
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { resolve } from 'node:path';
import { readSecretFile } from '../config/secrets.js';
import { loadCredentialKeyring } from '../identity/credential-crypto.js';
import { openIdentityStores } from '../identity/services.js';
import { IdentityExistsError, SUBJECT } from '../stores/identities/types.js';

const USAGE = `usage: gatehouse identities add --config FILE --subject S --type agent|human [--domain D] [--role R] [--rpm N] [--suspended]
       gatehouse identities list --config FILE
       gatehouse identities suspend|resume|remove --config FILE --subject S
       gatehouse identities set-limit --config FILE --subject S --rpm N|default
       gatehouse identities set-credential --config FILE --subject S --file PATH   (upstream LLM credential, stored encrypted)
       gatehouse identities clear-credential --config FILE --subject S`;

class Usage extends Error {}

function rpm(v: string | undefined, allowDefault: boolean): number | null | undefined {
  if (v === undefined) return undefined;
  if (allowDefault && v === 'default') return null;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1_000_000_000) throw new Usage('--rpm must be a whole number from 1 to 1000000000');
  return Number(v);
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  let v: Record<string, string | boolean | undefined>;
  try {
    if (!['add', 'list', 'suspend', 'resume', 'set-limit', 'remove', 'set-credential', 'clear-credential'].includes(sub ?? '')) throw new Usage('unknown subcommand');
    v = parseArgs({
      args: rest,
      options: { config: { type: 'string' }, subject: { type: 'string' }, type: { type: 'string' }, domain: { type: 'string' }, role: { type: 'string' }, rpm: { type: 'string' }, suspended: { type: 'boolean' }, file: { type: 'string' } },
      strict: true,
    }).values;
    if (typeof v.config !== 'string') throw new Usage('--config FILE is required');
    if (sub !== 'list' && (typeof v.subject !== 'string' || !SUBJECT.test(v.subject))) throw new Usage('--subject must be 1-256 printable characters');
    if (sub === 'add' && v.type !== 'agent' && v.type !== 'human') throw new Usage('--type must be agent or human');
    if (sub === 'set-limit' && v.rpm === undefined) throw new Usage('--rpm is required');
    // The credential comes from a file (checked like every secret file), never from the
    // command line, where other users can read it in the process list.
    if (sub === 'set-credential' && typeof v.file !== 'string') throw new Usage('--file PATH (a secret file, mode 0600) is required');
  } catch (err) {
    process.stderr.write(`gatehouse identities: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  let stores;
  try {
    const loaded = loadConfig(v.config as string);
    stores = openIdentityStores(loaded.config, loaded.dir);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse identities: ${(err as Error).message}\n`);
    return 1;
  }
  const s = stores.identities;
  const subject = v.subject as string;
  const now = Date.now();
  try {
    await s.init();
    let out: unknown;
    switch (sub) {
      case 'list':
        out = { identities: await s.list() };
        break;
      case 'add':
        out = { identity: await s.add({ subject, type: v.type as 'agent' | 'human', domain: (v.domain as string | undefined) ?? null, role: (v.role as string | undefined) ?? null, status: v.suspended ? 'suspended' : 'active', rpm_limit: rpm(v.rpm as string | undefined, false) ?? null }, now) };
        break;
      case 'set-credential':
      case 'clear-credential': {
        let stored: string | null = null;
        if (sub === 'set-credential') {
          const value = readSecretFile(resolve(v.file as string));
          if (value.length === 0 || value.length > 4096 || !/^[\x21-\x7e]+$/.test(value)) throw new Usage('the credential file must hold 1-4096 printable ASCII characters');
          const cfg = loadConfig(v.config as string);
          if (cfg.config.identities.credential_keys.length === 0) throw new Usage('identities.credential_keys is not configured: nothing to encrypt the credential with');
          stored = loadCredentialKeyring(cfg.config.identities.credential_keys, cfg.dir).encrypt(subject, value);
        }
        if (!(await s.setCredential(subject, stored, now))) throw new Usage(`no identity ${subject}`);
        out = { subject, llm_credential: stored === null ? 'removed' : 'stored' };
        break;
      }
      case 'remove':
        if (!(await s.remove(subject))) throw new Usage(`no identity ${subject}`);
        out = { removed: subject };
        break;
      default: {
        const patch = sub === 'suspend' ? { status: 'suspended' as const } : sub === 'resume' ? { status: 'active' as const } : { rpm_limit: rpm(v.rpm as string, true) };
        const rec = await s.update(subject, patch, now);
        if (rec === null) throw new Usage(`no identity ${subject}`);
        out = { identity: rec };
      }
    }
    if (sub !== 'list') {
      await stores.ready().catch(() => undefined);
      await stores.announce();
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof Usage) {
      process.stderr.write(`gatehouse identities: ${err.message}\n`);
      return 1;
    }
    if (err instanceof IdentityExistsError) {
      process.stderr.write(`gatehouse identities: ${subject} already exists\n`);
      return 1;
    }
    process.stderr.write(`gatehouse identities: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await stores.close().catch(() => undefined);
  }
}
