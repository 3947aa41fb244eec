/**
 * The directory archive target: segments as files under one directory (a mounted backup
 * volume, a WORM mount). Write-once by construction: each object is written to a private
 * temporary file, fsync'ed, then hard-linked to its name — link(2) fails when the name
 * exists, so an object is never replaced, even by two writers at once — and the
 * directory is fsync'ed. Files are made read-only (0400).
 *
 * The directory counterpart of "a bucket that allows anonymous reads" is a directory that
 * other users can enter or read: refused (group access is allowed, for a backup group).
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { ArchiveTargetError, checkKey, type ArchiveTarget, type PutResult, type TargetCheck } from './target.js';

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, constants.O_RDONLY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export function createDirectoryTarget(root: string): ArchiveTarget {
  const base = resolve(root);
  const path = (key: string) => {
    checkKey(key);
    return join(base, ...key.split('/'));
  };
  const fail = (what: string, err: unknown): never => {
    const code = errno(err);
    throw new ArchiveTargetError(code === 'EACCES' || code === 'EPERM' ? 'denied' : 'error', `archive directory ${base}: ${what}: ${code ?? (err as Error).message}`, { cause: err });
  };

  async function read(key: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(path(key));
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
      return fail(`cannot read ${key}`, err);
    }
  }

  async function walk(dir: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return;
      fail(`cannot list ${dir}`, err);
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p, out);
      else if (e.isFile() && !e.name.startsWith('.')) out.push(relative(base, p).split(sep).join('/'));
    }
  }

  return {
    kind: 'directory',
    location: base,
    prefix: '',
    async check(): Promise<TargetCheck> {
      try {
        await fs.mkdir(base, { recursive: true, mode: 0o700 });
        const st = await fs.stat(base);
        if (!st.isDirectory()) throw new ArchiveTargetError('error', `archive directory ${base} is not a directory`);
        if ((st.mode & 0o007) !== 0) {
          throw new ArchiveTargetError('public', `archive directory ${base} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: other users can read it (chmod o-rwx)`);
        }
        await fs.access(base, constants.W_OK | constants.X_OK);
      } catch (err) {
        if (err instanceof ArchiveTargetError) throw err;
        fail('not usable', err);
      }
      return { objectLock: null };
    },
    async putOnce(key, body): Promise<PutResult> {
      const final = path(key);
      const dir = dirname(final);
      try {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      } catch (err) {
        fail(`cannot create ${dir}`, err);
      }
      const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
      try {
        const h = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o400);
        try {
          await h.writeFile(body);
          await h.sync();
        } finally {
          await h.close();
        }
        try {
          await fs.link(tmp, final);
        } catch (err) {
          if (errno(err) !== 'EEXIST') throw err;
          const existing = await fs.readFile(final);
          return existing.equals(body) ? 'exists' : 'conflict';
        }
        await fsyncDir(dir);
        return 'written';
      } catch (err) {
        return fail(`cannot write ${key}`, err);
      } finally {
        await fs.rm(tmp, { force: true }).catch(() => undefined);
      }
    },
    get: read,
    async head(key) {
      try {
        const st = await fs.stat(path(key));
        return st.isFile() ? { bytes: st.size } : null;
      } catch (err) {
        if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return null;
        return fail(`cannot stat ${key}`, err);
      }
    },
    async list(prefix) {
      // Walk only the deepest folder the prefix names, then filter by the rest of it.
      const cut = prefix.lastIndexOf('/');
      const dir = cut < 0 ? base : join(base, ...prefix.slice(0, cut).split('/').filter((s) => s !== ''));
      const out: string[] = [];
      await walk(dir, out);
      return out.filter((k) => k.startsWith(prefix)).sort();
    },
    async folders(prefix) {
      const dir = join(base, ...prefix.split('/').filter((s) => s !== ''));
      try {
        const entries = await fs.readdir(dir, { withFileTypes: true });
        return entries
          .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
          .map((e) => e.name)
          .sort();
      } catch (err) {
        if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
        return fail(`cannot list ${dir}`, err);
      }
    },
    async probeAnonymous() {
      // File permissions are the whole story for a directory; check() looked at them.
      const st = await fs.stat(base).catch((err: unknown) => fail('not usable', err));
      if ((st.mode & 0o007) !== 0) throw new ArchiveTargetError('public', `archive directory ${base} became readable by other users`);
    },
    async close() {},
  };
}
