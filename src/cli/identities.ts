/**
 * `gatehouse identities add|list|suspend|resume|set-limit|remove --config FILE ...`: the
 * identity registry the config names (SQLite in state.dir, or PostgreSQL). Changes reach
 * running gateways by their refresh poll (identities.refresh_interval) or at once by a
 * Redis push when state.store is redis.
 */
import { CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { resolve } from 'node:path';
import { readSecretFile } from '../config/secrets.js';
import { loadCredentialKeyring } from '../identity/credential-crypto.js';
import { openIdentityStores } from '../identity/services.js';
import { IdentityExistsError, SUBJECT } from '../stores/identities/types.js';

const SUBJECT_OPT = { type: 'string', value: 'S', required: true, description: 'the identity (token subject)' } as const;

export const SPEC: CommandSpec = {
  name: 'identities',
  summary: 'The identity registry the config names (SQLite in state.dir, or PostgreSQL); running gateways see changes within identities.refresh_interval, at once with Redis.',
  subcommands: {
    add: {
      usage: 'gatehouse identities add --config FILE --subject S --type agent|human [--domain D] [--role R] [--rpm N] [--suspended]',
      summary: 'register an identity',
      options: {
        config: CONFIG_REQUIRED,
        subject: SUBJECT_OPT,
        type: { type: 'string', value: 'agent|human', required: true, description: 'the identity type' },
        domain: { type: 'string', value: 'D', description: 'its domain' },
        role: { type: 'string', value: 'R', description: 'its role' },
        rpm: { type: 'string', value: 'N', description: 'its own requests-per-minute limit' },
        suspended: { type: 'boolean', description: 'register it suspended' },
      },
    },
    list: { usage: 'gatehouse identities list --config FILE', summary: 'list every identity (JSON)', options: { config: CONFIG_REQUIRED } },
    suspend: { usage: 'gatehouse identities suspend --config FILE --subject S', summary: 'suspend an identity (its requests get 403)', options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT } },
    resume: { usage: 'gatehouse identities resume --config FILE --subject S', summary: 'resume a suspended identity', options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT } },
    remove: { usage: 'gatehouse identities remove --config FILE --subject S', summary: 'remove an identity', options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT } },
    'set-limit': {
      usage: 'gatehouse identities set-limit --config FILE --subject S --rpm N|default',
      summary: 'set (or reset to the default) its requests-per-minute limit',
      options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT, rpm: { type: 'string', value: 'N|default', required: true, description: 'the limit, or default' } },
    },
    'set-credential': {
      usage: 'gatehouse identities set-credential --config FILE --subject S --file PATH',
      summary: 'store its upstream LLM credential, encrypted (read from a secret file, never the command line)',
      options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT, file: { type: 'string', value: 'PATH', required: true, description: 'a secret file (mode 0600) with the credential' } },
    },
    'clear-credential': { usage: 'gatehouse identities clear-credential --config FILE --subject S', summary: 'remove its stored LLM credential', options: { config: CONFIG_REQUIRED, subject: SUBJECT_OPT } },
  },
};

class Usage extends Error {}

function rpm(v: string | undefined, allowDefault: boolean): number | null | undefined {
  if (v === undefined) return undefined;
  if (allowDefault && v === 'default') return null;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1_000_000_000) throw new Usage('--rpm must be a whole number from 1 to 1000000000');
  return Number(v);
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const sub = p.sub as string;
  const v = p.values as Record<string, string | boolean | undefined>;
  try {
    if (sub !== 'list' && (typeof v.subject !== 'string' || !SUBJECT.test(v.subject))) throw new Usage('--subject must be 1-256 printable characters');
    if (sub === 'add' && v.type !== 'agent' && v.type !== 'human') throw new Usage('--type must be agent or human');
    rpm(v.rpm as string | undefined, sub === 'set-limit');
  } catch (err) {
    return p.usageError((err as Error).message);
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
