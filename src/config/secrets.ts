/**
 * Secrets come from files referenced by path in config, never inline. A secret file must
 * be a regular file owned by the gateway's user (or root) and must not be readable or
 * writable by group or others — the rule ssh applies to private keys. One exception, the
 * rule PostgreSQL applies to its key file: a file owned by root may be readable by the
 * gateway's own group (0640/0440), which is how a root-owned secret is shared with exactly
 * one service (a Debian `ssl-cert`-style group, a Kubernetes Secret volume with fsGroup).
 * The value is never logged and never part of an error message; errors name the path only.
 *
 * "The gateway's user" is the process's own identity, except while `run` validates a
 * config as root before dropping privileges: then it is the configured `process.user`
 * (withSecretReader), so what is checked is what the dropped process will be able to do.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { access, currentIdentity, type Identity } from '../server/privileges.js';

let reader: Identity | null = null;

/** Runs `fn` with secret files checked for `who` instead of this process (null: this process). */
export function withSecretReader<T>(who: Identity | null, fn: () => T): T {
  const before = reader;
  reader = who;
  try {
    return fn();
  } finally {
    reader = before;
  }
}

export class SecretFileError extends Error {
  readonly code = 'secret_file_unsafe';
}

export function checkSecretFile(path: string): string | null {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    return `cannot read secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
  if (!st.isFile()) return `secret file ${path} is not a regular file`;
  const who = reader ?? currentIdentity();
  if ((st.mode & 0o077) !== 0 && !rootOwnedGroupReadable(st, who)) {
    return `secret file ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it must not be accessible by group or others (chmod 600 or 400; a root-owned file may be 0640 for the gateway's own group)`;
  }
  if (who.uid !== -1 && st.uid !== who.uid && st.uid !== 0) {
    return `secret file ${path} is owned by uid ${st.uid}, not by the gateway's user or root`;
  }
  if (reader === null) {
    try {
      accessSync(path, constants.R_OK);
    } catch {
      return `secret file ${path} is not readable by the gateway's user`;
    }
  } else if (!access(path, reader, 'read').ok) {
    return `secret file ${path} is not readable by the gateway's user (uid ${reader.uid}, gid ${reader.gid})`;
  }
  return null;
}

/** Root-owned, group may only read, others nothing, and the group is the gateway's (never for a gateway running as root). */
function rootOwnedGroupReadable(st: { uid: number; gid: number; mode: number }, who: Identity): boolean {
  return st.uid === 0 && who.uid > 0 && (st.mode & 0o037) === 0 && (st.gid === who.gid || who.groups.includes(st.gid));
}

/**
 * `credential:NAME` in a file key is the file NAME in `$CREDENTIALS_DIRECTORY`, where
 * systemd's `LoadCredential=` puts secrets (docs/deploy.md#systemd). Returns the path, or
 * an error message. Resolved once, when the config is loaded.
 */
export const CREDENTIAL_PREFIX = 'credential:';

export function resolveCredential(ref: string, env: NodeJS.ProcessEnv = process.env): { path: string } | { error: string } {
  const name = ref.slice(CREDENTIAL_PREFIX.length);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,254}$/.test(name)) return { error: `${JSON.stringify(ref)}: a credential name is letters, digits, _ . @ - (no path)` };
  const dir = env.CREDENTIALS_DIRECTORY;
  if (dir === undefined || dir === '') return { error: `${JSON.stringify(ref)} needs $CREDENTIALS_DIRECTORY (set by systemd for a unit with LoadCredential=${name}:...)` };
  return { path: join(dir, name) };
}

/** Reads a secret after the permission check; trailing newlines are not part of it. */
export function readSecretFile(path: string): string {
  const problem = checkSecretFile(path);
  if (problem) throw new SecretFileError(problem);
  return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
}

/**
 * Key names that hold a secret when given an inline value. `*_file` keys are the
 * sanctioned way and never match.
 */
const SECRET_KEY = /(^|_)(password|passwd|secret|token|api_?key|private_?key|credentials?|hmac_?key)$/i;

export function isSecretKeyName(key: string): boolean {
  return !/_(file|path)$/i.test(key) && SECRET_KEY.test(key);
}

/** A URL with a password in its userinfo is an inline secret too. */
export function urlHasInlinePassword(value: string): boolean {
  try {
    const u = new URL(value);
    return u.password !== '';
  } catch {
    return false;
  }
}
