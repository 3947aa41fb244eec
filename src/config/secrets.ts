/**
 * Secrets come from files referenced by path in config, never inline. A secret file must
 * be a regular file owned by the gateway's user (or root) and must not be readable or
 * writable by group or others — the rule ssh applies to private keys. The value is never
 * logged and never part of an error message; errors name the path only.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';

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
  if ((st.mode & 0o077) !== 0) {
    return `secret file ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it must not be accessible by group or others (chmod 600 or 400)`;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== -1 && st.uid !== uid && st.uid !== 0) {
    return `secret file ${path} is owned by uid ${st.uid}, not by the gateway's user or root`;
  }
  try {
    accessSync(path, constants.R_OK);
  } catch {
    return `secret file ${path} is not readable by the gateway's user`;
  }
  return null;
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
