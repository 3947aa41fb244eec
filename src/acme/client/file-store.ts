/**
 * The embedded ACME store: files under `<state.dir>/acme/<directory hash>/` — the
 * directory 0700, every key file 0600, each written to a temporary name and renamed, so
 * a crash never leaves half a certificate. The order lock is a lock file holding the
 * owner's pid (O_EXCL), taken over when that process is gone: two processes pointed at
 * one state.dir by mistake still order once.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { directoryNamespace, type AcmeStore, type StoredCertificate } from './store.js';

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode); // the umask may have cleared bits; never wider than asked
  renameSync(tmp, path);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Lock files this process holds (by path): a lock file with our own pid that is not here was left by a dead earlier run. */
const held = new Set<string>();

export function createFileAcmeStore(stateDir: string, directory: string): AcmeStore {
  const dir = join(stateDir, 'acme', directoryNamespace(directory));
  const path = (name: string, ext: string) => join(dir, `${name.replace(/[^a-z0-9_-]/gi, '_')}.${ext}`);

  function tryLock(name: string): boolean {
    const file = path(name, 'lock');
    for (let i = 0; i < 2; i++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readOrNull(file));
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) return false;
        rmSync(file, { force: true }); // left by a process that died mid-order (or by an earlier run of this pid)
      }
    }
    return false;
  }

  return {
    async init() {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(join(stateDir, 'acme'), 0o700);
      chmodSync(dir, 0o700);
    },
    async loadAccountKey() {
      return readOrNull(join(dir, 'account.key'));
    },
    async saveAccountKey(keyPem) {
      const existing = readOrNull(join(dir, 'account.key'));
      if (existing !== null) return existing;
      writeAtomic(join(dir, 'account.key'), keyPem, 0o600);
      return keyPem;
    },
    async load(name) {
      const chainPem = readOrNull(path(name, 'crt'));
      const keyPem = readOrNull(path(name, 'key'));
      return chainPem !== null && keyPem !== null ? { chainPem, keyPem } : null;
    },
    async save(name, cert: StoredCertificate) {
      // Key first: a crash between the two renames leaves a new key with the old
      // certificate, which load() callers reject (they check that the pair matches).
      writeAtomic(path(name, 'key'), cert.keyPem, 0o600);
      writeAtomic(path(name, 'crt'), cert.chainPem, 0o644);
    },
    async withOrderLock(name, fn) {
      const file = path(name, 'lock');
      if (held.has(file) || !tryLock(name)) return 'busy';
      held.add(file);
      try {
        return await fn();
      } finally {
        held.delete(file);
        rmSync(file, { force: true });
      }
    },
    shared: false,
    async publishChallenge() {},
    async withdrawChallenge() {},
    async lookupChallenge() {
      return null;
    },
    async close() {},
  };
}
