/**
 * Running unprivileged (docs/deploy.md#privileges). Started as root, `gatehouse run` binds
 * its listeners first (ports below 1024 need root or CAP_NET_BIND_SERVICE), then gives up
 * root for good — supplementary groups cleared, then the group, then the user, each call
 * setting the real, effective and saved id — and only then reads secrets, opens state
 * files and serves. Order matters: setuid first would leave no right to change the group.
 *
 * Names resolve through /etc/passwd and /etc/group (what distroless and Debian images
 * carry); numeric ids need no lookup. Node has no getpwnam binding, and resolving the
 * name ourselves lets `check` evaluate file permissions for the configured user before
 * anything is dropped.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ProcessConfig } from '../config/schema.js';

/** Who reads files: a uid, its primary gid and its supplementary groups. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
}

export interface RunAs extends Identity {
  /** As configured (name or number), for messages. */
  readonly user: string;
  readonly group: string;
}

export class PrivilegeError extends Error {
  readonly code = 'privileges';
}

/** The identity of this process now (effective ids). */
export function currentIdentity(): Identity {
  const uid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  const gid = typeof process.getegid === 'function' ? process.getegid() : -1;
  const groups = typeof process.getgroups === 'function' ? process.getgroups() : [];
  return { uid, gid, groups };
}

function readDb(file: string): string[][] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

const NUMERIC = /^\d+$/;

/**
 * The configured user and group as ids, or null when `process.user` is not set.
 * Throws PrivilegeError for a name that /etc/passwd or /etc/group does not know.
 */
export function resolveRunAs(p: ProcessConfig, files: { passwd?: string; group?: string } = {}): RunAs | null {
  if (p.user === undefined) return null;
  const passwd = readDb(files.passwd ?? '/etc/passwd');
  const groupDb = readDb(files.group ?? '/etc/group');
  const userText = String(p.user);
  let uid: number;
  let primary: number | undefined;
  if (typeof p.user === 'number' || NUMERIC.test(userText)) {
    uid = Number(userText);
    const row = passwd.find((r) => r[2] === String(uid));
    primary = row?.[3] !== undefined ? Number(row[3]) : undefined;
  } else {
    const row = passwd.find((r) => r[0] === userText);
    if (!row || row[2] === undefined || row[3] === undefined) throw new PrivilegeError(`process.user: no user ${JSON.stringify(userText)} in /etc/passwd (give a numeric uid instead)`);
    uid = Number(row[2]);
    primary = Number(row[3]);
  }
  let gid: number;
  let groupText: string;
  if (p.group !== undefined) {
    groupText = String(p.group);
    if (typeof p.group === 'number' || NUMERIC.test(groupText)) gid = Number(groupText);
    else {
      const row = groupDb.find((r) => r[0] === groupText);
      if (!row || row[2] === undefined) throw new PrivilegeError(`process.group: no group ${JSON.stringify(groupText)} in /etc/group (give a numeric gid instead)`);
      gid = Number(row[2]);
    }
  } else {
    if (primary === undefined) throw new PrivilegeError(`process.group: uid ${uid} is not in /etc/passwd, so its primary group is unknown; set process.group`);
    gid = primary;
    groupText = String(gid);
  }
  if (uid === 0) throw new PrivilegeError('process.user: dropping to root (uid 0) drops nothing; name an unprivileged user, or set process.serve_as_root');
  // Supplementary groups are cleared by the drop: the process keeps only its primary group.
  return { uid, gid, groups: [gid], user: userText, group: groupText };
}

export type PrivilegePlan =
  | { readonly action: 'drop'; readonly to: RunAs }
  | { readonly action: 'none'; readonly reason: string }
  | { readonly action: 'root'; readonly warning: string };

/** What `run` will do about privileges, decided before anything is bound. Throws PrivilegeError when it must refuse. */
export function planPrivileges(p: ProcessConfig, now: Identity = currentIdentity()): PrivilegePlan {
  const to = resolveRunAs(p);
  if (now.uid !== 0) {
    if (to !== null && to.uid !== now.uid) {
      throw new PrivilegeError(`process.user is ${to.user} (uid ${to.uid}) but gatehouse runs as uid ${now.uid} and cannot switch users without root; start it as root (it drops to ${to.user} after binding), or as ${to.user}`);
    }
    return { action: 'none', reason: `not root (uid ${now.uid})` };
  }
  if (to !== null) return { action: 'drop', to };
  if (p.serve_as_root) return { action: 'root', warning: 'serving as root (process.serve_as_root: true): a flaw in gatehouse or its dependencies would run with full privileges' };
  throw new PrivilegeError(
    'refusing to serve as root: set process.user (and optionally process.group) to drop privileges once the listeners are bound, ' +
      'or run as an unprivileged user with CAP_NET_BIND_SERVICE for ports below 1024; process.serve_as_root: true keeps root (not recommended)',
  );
}

/** Real, effective, saved and filesystem ids and the supplementary groups, as the kernel reports them. */
export interface ProcIds {
  readonly uid: readonly number[];
  readonly gid: readonly number[];
  readonly groups: readonly number[];
}

export function parseProcStatus(text: string): ProcIds {
  const line = (name: string) => (new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1] ?? '').trim();
  const nums = (s: string) => (s === '' ? [] : s.split(/\s+/).map(Number));
  return { uid: nums(line('Uid')), gid: nums(line('Gid')), groups: nums(line('Groups')) };
}

export function procIds(pid: number | 'self' = 'self'): ProcIds | null {
  try {
    return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Drops root for good. Throws PrivilegeError if any id afterwards is not the target's
 * (checked in /proc/self/status where it exists: real, effective, saved, filesystem).
 */
export function dropPrivileges(to: RunAs): void {
  if (typeof process.setuid !== 'function' || typeof process.setgid !== 'function' || typeof process.setgroups !== 'function') {
    throw new PrivilegeError('this platform cannot change the process user');
  }
  try {
    process.setgroups([]);
    process.setgid(to.gid);
    process.setuid(to.uid);
  } catch (err) {
    throw new PrivilegeError(`cannot drop to ${to.user}:${to.group} (uid ${to.uid}, gid ${to.gid}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ids = procIds();
  const ok = ids === null ? process.getuid?.() === to.uid && process.geteuid?.() === to.uid && process.getgid?.() === to.gid && process.getegid?.() === to.gid : ids.uid.every((u) => u === to.uid) && ids.gid.every((g) => g === to.gid) && ids.groups.every((g) => g === to.gid);
  if (!ok) throw new PrivilegeError(`privileges not fully dropped (kernel reports ${JSON.stringify(ids)})`);
  // A regained root would undo all of the above; setuid(0) must fail now.
  try {
    process.setuid(0);
  } catch {
    return;
  }
  throw new PrivilegeError('privileges not dropped: the process could become root again');
}

/** What `who` may do with `path` by its mode bits (no ACLs), including search permission on every parent directory. */
export function access(path: string, who: Identity, want: 'read' | 'write'): { ok: boolean; why?: string } {
  if (who.uid === 0) return { ok: true };
  const abs = resolve(path);
  const bits = (st: { mode: number; uid: number; gid: number }, r: number, w: number, x: number) => {
    const cls = st.uid === who.uid ? 6 : who.gid === st.gid || who.groups.includes(st.gid) ? 3 : 0;
    const m = (st.mode >> cls) & 7;
    return (r === 0 || (m & 4) !== 0) && (w === 0 || (m & 2) !== 0) && (x === 0 || (m & 1) !== 0);
  };
  let st;
  try {
    st = statSync(abs);
  } catch (err) {
    return { ok: false, why: `${abs}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
  for (let d = dirname(abs); ; d = dirname(d)) {
    let ds;
    try {
      ds = statSync(d);
    } catch {
      break;
    }
    if (!bits(ds, 0, 0, 1)) return { ok: false, why: `directory ${d} is not searchable (mode ${(ds.mode & 0o777).toString(8)}, owner ${ds.uid}:${ds.gid})` };
    if (d === dirname(d)) break;
  }
  const dirWrite = st.isDirectory() && want === 'write';
  if (!bits(st, want === 'read' ? 1 : 0, want === 'write' ? 1 : 0, dirWrite || (st.isDirectory() && want === 'read') ? 1 : 0)) {
    return { ok: false, why: `${abs} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} and owner ${st.uid}:${st.gid}` };
  }
  return { ok: true };
}
