/**
 * From config to a running archiver (`audit.archive`, docs/configuration.md): the target
 * with its credentials read from their secret files, and the archiver's options. Used by
 * the audit service (one archiver per gateway, for its own stream) and by the CLI.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuditArchiveConfig } from '../../config/schema.js';
import { readSecretFile } from '../../config/secrets.js';
import { stateDir } from '../../stores/postgres-client.js';
import type { Metrics } from '../../observability/metrics.js';
import type { ArchiverMetrics } from './archiver.js';
import { createDirectoryTarget } from './directory-target.js';
import type { ArchiveTarget } from './target.js';

/** Where an archive is, as given on the command line: `s3://bucket/prefix` or a directory. */
export type ArchiveLocation = { kind: 's3'; bucket: string; prefix: string } | { kind: 'directory'; path: string };

export function parseArchiveLocation(text: string): ArchiveLocation {
  if (!text.startsWith('s3://')) return { kind: 'directory', path: text };
  const rest = text.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  let prefix = slash < 0 ? '' : rest.slice(slash + 1);
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new TypeError(`${text}: not an s3://bucket/prefix location`);
  return { kind: 's3', bucket, prefix };
}

/** The S3 connection settings the CLI may give without a config (a third party's read-only credentials). */
export interface S3Connection {
  readonly endpoint?: string;
  readonly region?: string;
  readonly forcePathStyle?: boolean;
  readonly accessKeyIdFile: string;
  readonly secretAccessKeyFile: string;
  readonly caFile?: string;
  readonly requestTimeoutMs?: number;
}

/** The AWS SDK is loaded only when an S3 target is used (it is large: seconds of start-up on a busy machine). */
export async function s3Target(bucket: string, prefix: string, c: S3Connection, dir: string): Promise<ArchiveTarget> {
  const { createS3Target } = await import('./s3-target.js');
  return createS3Target({
    bucket,
    prefix,
    region: c.region ?? 'us-east-1',
    endpoint: c.endpoint,
    // An explicit endpoint (MinIO, Ceph) usually has no wildcard DNS for virtual-hosted buckets.
    forcePathStyle: c.forcePathStyle ?? c.endpoint !== undefined,
    accessKeyId: readSecretFile(resolve(dir, c.accessKeyIdFile)),
    secretAccessKey: readSecretFile(resolve(dir, c.secretAccessKeyFile)),
    ca: c.caFile !== undefined ? readFileSync(resolve(dir, c.caFile)) : undefined,
    requestTimeoutMs: c.requestTimeoutMs ?? 30_000,
  });
}

export function s3Connection(a: AuditArchiveConfig): S3Connection | null {
  const s = a.s3;
  if (s === undefined) return null;
  return { endpoint: s.endpoint, region: s.region, forcePathStyle: s.force_path_style, accessKeyIdFile: s.access_key_id_file, secretAccessKeyFile: s.secret_access_key_file, caFile: s.ca_file, requestTimeoutMs: s.request_timeout };
}

/** The configured target; relative paths are relative to the config file's directory. */
export async function openArchiveTarget(a: AuditArchiveConfig, dir: string): Promise<ArchiveTarget> {
  if (a.s3 !== undefined) return s3Target(a.s3.bucket, a.s3.prefix, s3Connection(a) as S3Connection, dir);
  if (a.directory !== undefined) return createDirectoryTarget(stateDir(a.directory, dir));
  throw new Error('audit.archive has neither directory nor s3');
}

export function archiverMetrics(m: Metrics, target: string): ArchiverMetrics {
  const t = { target };
  return {
    segment: (records, bytes) => {
      m.auditArchiveSegments.inc();
      m.auditArchiveBytes.inc(bytes);
      void records;
    },
    failure: (reason) => m.auditArchiveFailures.labels(reason).inc(),
    up: (ok) => m.auditArchiveUp.set(t, ok ? 1 : 0),
    success: (time, lag) => {
      m.auditArchiveLastSuccess.set(t, time);
      m.auditArchiveLag.set(t, lag);
    },
    pruned: (n) => m.auditArchivePruned.inc(n),
    objectLock: (on) => m.auditArchiveObjectLock.set(t, on ? 1 : 0),
  };
}

export function lockMode(a: AuditArchiveConfig): 'GOVERNANCE' | 'COMPLIANCE' | null {
  return a.object_lock_mode === undefined ? null : a.object_lock_mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE';
}
