/**
 * Checks for the `process` block (docs/deploy.md#privileges): the user and group exist,
 * and every file the gateway reads after dropping privileges — at start and at every
 * reload — is readable by that user (a warning: `run` would fail or a reload be refused).
 * Secret files are checked for that user by the secret-file check itself (an error).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CA_FILES } from '../pki/ca.js';
import { access, currentIdentity, PrivilegeError, resolveRunAs, type RunAs } from '../server/privileges.js';
import type { PartialConfig } from './load.js';

type Report = (path: string, message: string) => void;

/** The user the config's secrets are checked for: the configured process.user when it differs from this process (null: this process). */
export function secretReaderFor(config: Pick<PartialConfig, 'process'>): RunAs | null {
  try {
    const to = resolveRunAs(config.process);
    return to !== null && to.uid !== currentIdentity().uid ? to : null;
  } catch {
    return null;
  }
}

/** Every `*_file` / `file` / `files` value in the config, with its path. */
export function fileRefs(node: unknown, path = '', out: Array<{ path: string; file: string }> = [], fileKey = false): Array<{ path: string; file: string }> {
  if (Array.isArray(node)) {
    node.forEach((v, i) => {
      if (fileKey && typeof v === 'string') out.push({ path: `${path}[${i}]`, file: v });
      else fileRefs(v, `${path}[${i}]`, out);
    });
  } else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      const p = path === '' ? k : `${path}.${k}`;
      const isFile = k === 'file' || k === 'files' || k.endsWith('_file');
      if (isFile && typeof v === 'string') out.push({ path: p, file: v });
      else fileRefs(v, p, out, isFile);
    }
  }
  return out;
}

export function validateProcess(config: PartialConfig, dir: string, configFile: string | undefined, err: Report, warn: Report): void {
  const p = config.process;
  if (p.serve_as_root && p.user !== undefined) err('process.serve_as_root', 'contradicts process.user: either drop to process.user or keep root, not both');
  let to: RunAs | null;
  try {
    to = resolveRunAs(p);
  } catch (e) {
    if (e instanceof PrivilegeError) err(e.message.startsWith('process.group') ? 'process.group' : 'process.user', e.message.replace(/^process\.(user|group): /, ''));
    return;
  }
  if (to === null || to.uid === currentIdentity().uid) return;
  const who = `process.user ${to.user} (uid ${to.uid}, gid ${to.gid})`;
  const read = (path: string, file: string) => {
    const a = access(file, to, 'read');
    if (!a.ok) warn(path, `not readable by ${who}, which gatehouse runs as after binding: ${a.why}`);
  };
  if (configFile !== undefined) read('(file)', configFile);
  for (const f of fileRefs(config)) read(f.path, resolve(dir, f.file));
  if (config.ca) {
    for (const f of [CA_FILES.rootCert, CA_FILES.intermediateCert, CA_FILES.intermediateKey]) {
      const file = resolve(dir, config.ca.dir, f);
      if (existsSync(file)) read('ca.dir', file);
    }
  }
  const state = resolve(dir, config.state.dir);
  if (existsSync(state)) {
    const a = access(state, to, 'write');
    if (!a.ok) warn('state.dir', `not writable by ${who}: ${a.why} (chown it to ${to.user})`);
  }
}
