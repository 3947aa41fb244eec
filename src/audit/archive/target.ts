/**
 * Where archive segments go: an S3-compatible bucket (s3-target.ts) or a directory
 * (directory-target.ts), behind one small interface with one contract suite
 * (target-contract.test.ts). Objects are write-once: a key that exists is never written
 * again, whatever its content.
 */

/** Why a target operation failed, as a bounded metric label and a log field. */
export type TargetFailure = 'unreachable' | 'denied' | 'public' | 'object_lock_missing' | 'not_found' | 'error';

export class ArchiveTargetError extends Error {
  readonly reason: TargetFailure;
  constructor(reason: TargetFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArchiveTargetError';
    this.reason = reason;
  }
}

export interface TargetCheck {
  /** Object Lock is enabled on the bucket: objects are written with a retention date. Null: not available (or a directory). */
  readonly objectLock: { readonly mode: 'GOVERNANCE' | 'COMPLIANCE' | null } | null;
}

export interface PutOptions {
  /** Object Lock retention (only used when check() reported it enabled). */
  readonly retainUntil?: Date | null;
  readonly lockMode?: 'GOVERNANCE' | 'COMPLIANCE' | null;
  readonly contentType?: string;
}

/**
 * - `written`: the object did not exist and now holds `body`;
 * - `exists`: it already held exactly `body` (a retry after a crash);
 * - `conflict`: it holds other bytes, which were left as they are.
 */
export type PutResult = 'written' | 'exists' | 'conflict';

export interface ArchiveTarget {
  readonly kind: 's3' | 'directory';
  /** For logs and reports, no secrets: `s3://bucket/prefix` or the directory. */
  readonly location: string;
  /** Prefix of every key this target writes ('' or ending in '/'). */
  readonly prefix: string;
  /**
   * Checks that the target is reachable, writable with our credentials and not readable
   * by anyone else (throws ArchiveTargetError 'public' when it is), and what it supports.
   */
  check(): Promise<TargetCheck>;
  /** Write-once (never overwrites). */
  putOnce(key: string, body: Buffer, opts?: PutOptions): Promise<PutResult>;
  /** The object's bytes, or null when there is no such object. */
  get(key: string): Promise<Buffer | null>;
  /** The object's size, or null when there is no such object. */
  head(key: string): Promise<{ bytes: number } | null>;
  /** Every key under `prefix` (recursively), sorted by code point. */
  list(prefix: string): Promise<string[]>;
  /** The next level of "folders" under `prefix` (names without the prefix and the trailing '/'), sorted. */
  folders(prefix: string): Promise<string[]>;
  /**
   * After an object was written: checks it cannot be read without credentials (S3: an
   * anonymous GET of that key). Throws ArchiveTargetError 'public' when it can.
   */
  probeAnonymous(key: string): Promise<void>;
  close(): Promise<void>;
}

/** Accepts a key only when it is a relative path of plain segments (no '.', '..', empty segment or backslash). */
export function checkKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.includes('\\') || key.includes('\0') || key.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new TypeError(`archive key ${JSON.stringify(key)} is not a plain relative path`);
  }
}
