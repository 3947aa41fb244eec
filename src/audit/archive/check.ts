/**
 * `gatehouse check` for `audit.archive`: the target is asked what the gateway will ask at
 * start — reachable with these credentials, not readable anonymously, Object Lock when it
 * is required — so a public bucket is an error before the gateway runs. A target that
 * cannot be reached from where `check` runs is a warning (the gateway retries it).
 */
import type { LoadedConfig, Problem } from '../../config/load.js';
import { openArchiveTarget } from './open.js';
import { ArchiveTargetError } from './target.js';

export async function checkArchiveTarget(loaded: LoadedConfig, timeoutMs = 15_000): Promise<Problem[]> {
  const a = loaded.config.audit;
  if (!a.enabled || a.archive === undefined) return [];
  const path = a.archive.s3 !== undefined ? 'audit.archive.s3' : 'audit.archive.directory';
  const target = await openArchiveTarget(a.archive, loaded.dir);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new ArchiveTargetError('unreachable', `${target.location}: no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const c = await Promise.race([target.check(), timeout]);
    if (c.objectLock === null && a.archive.object_lock === 'required') return [{ path: 'audit.archive.object_lock', message: `${target.location}: Object Lock is required but not enabled on the bucket`, severity: 'error' }];
    if (c.objectLock === null && target.kind === 's3') return [{ path: 'audit.archive.object_lock', message: `${target.location} has no Object Lock: segments are write-once by key only (whoever may delete in the bucket can delete them)`, severity: 'warning' }];
    return [];
  } catch (err) {
    const reason = err instanceof ArchiveTargetError ? err.reason : 'error';
    const message = (err as Error).message;
    return [{ path, message: reason === 'unreachable' ? `could not check the archive target now (the gateway retries it): ${message}` : message, severity: reason === 'unreachable' ? 'warning' : 'error' }];
  } finally {
    clearTimeout(timer);
    await target.close().catch(() => undefined);
  }
}
