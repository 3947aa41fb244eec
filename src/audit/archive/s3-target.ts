/**
 * The S3-compatible archive target (AWS S3, MinIO, Ceph RGW), through the official AWS
 * SDK v3. Credentials come only from the two secret files given (the SDK's own chain of
 * environment variables, ~/.aws files and instance metadata is never consulted), and are
 * never logged: errors carry the SDK error's name and status, not the request.
 *
 * Write-once: a PUT carries `If-None-Match: *` (AWS, MinIO and Ceph refuse it with 412
 * when the key exists) and is preceded by a HEAD, so a server that ignores the condition
 * does not get an object replaced either, short of a race with another writer of the same
 * key. With Object Lock enabled on the bucket, each object is written with a retention
 * date (`ObjectLockMode`, `ObjectLockRetainUntilDate`), which not even the credentials that
 * wrote it can shorten in compliance mode.
 *
 * A bucket that can be read anonymously is refused — what `mc anonymous get` shows,
 * checked by gatehouse: the bucket policy status, the policy's statements, the ACL's
 * grants, and unauthenticated GETs against the endpoint itself (a listing of the prefix,
 * an object), which is the check that does not depend on what the server implements.
 */
import { Agent as HttpsAgent } from 'node:https';
import { randomBytes } from 'node:crypto';
import {
  GetBucketAclCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Agent, request } from 'undici';
import { ArchiveTargetError, checkKey, type ArchiveTarget, type PutResult, type TargetCheck } from './target.js';

export interface S3TargetOptions {
  readonly bucket: string;
  /** '' or ending in '/'. */
  readonly prefix: string;
  readonly region: string;
  /** e.g. https://minio.internal:9000; absent: AWS. */
  readonly endpoint?: string;
  readonly forcePathStyle: boolean;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** PEM bundle to trust for an https endpoint (an internal CA). */
  readonly ca?: Buffer;
  readonly requestTimeoutMs: number;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'TimeoutError', 'RequestTimeout', 'AbortError']);

function status(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

/** A short, secret-free description of an SDK error: its name and HTTP status. */
function describe(err: unknown): string {
  const e = err as SdkError;
  const s = status(err);
  return `${e?.name ?? e?.code ?? 'error'}${s !== undefined ? ` (HTTP ${s})` : ''}`;
}

function classify(err: unknown, what: string, location: string): ArchiveTargetError {
  const e = err as SdkError;
  const s = status(err);
  let reason: ArchiveTargetError['reason'] = 'error';
  if (NETWORK.has(e?.name ?? '') || NETWORK.has(e?.code ?? '') || s === undefined || s >= 500) reason = 'unreachable';
  else if (s === 401 || s === 403) reason = 'denied';
  else if (s === 404) reason = 'not_found';
  return new ArchiveTargetError(reason, `${location}: ${what}: ${describe(err)}${reason === 'unreachable' && e?.message ? `: ${e.message.slice(0, 200)}` : ''}`, { cause: err });
}

/** Does a bucket policy statement let anyone (Principal "*") read objects or list the bucket, unconditionally? */
export function policyAllowsAnonymousRead(policyJson: string): string | null {
  let doc: { Statement?: unknown };
  try {
    doc = JSON.parse(policyJson) as { Statement?: unknown };
  } catch {
    return null;
  }
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);
  const statements = Array.isArray(doc?.Statement) ? doc.Statement : doc?.Statement !== undefined ? [doc.Statement] : [];
  for (const st of statements as Array<Record<string, unknown>>) {
    if (st === null || typeof st !== 'object' || st.Effect !== 'Allow') continue;
    // AWS does not count a statement with a condition (source IP, VPC endpoint...) as public.
    if (st.Condition !== undefined && st.Condition !== null && Object.keys(st.Condition as object).length > 0) continue;
    const p = st.Principal;
    const anyone = p === '*' || (p !== null && typeof p === 'object' && list((p as Record<string, unknown>).AWS).includes('*'));
    if (!anyone) continue;
    const reads = list(st.Action).filter((a) => /^(\*|s3:\*|s3:get\*|s3:list\*|s3:getobject.*|s3:listbucket.*)$/i.test(a));
    if (reads.length > 0) return `the bucket policy allows anyone ${reads.join(', ')}`;
  }
  return null;
}

const ALL_USERS = /\/groups\/global\/(AllUsers|AuthenticatedUsers)$/;

export function createS3Target(o: S3TargetOptions): ArchiveTarget {
  // The SDK warns on Node < 22 about its releases after January 2027; the version this
  // project installs (package-lock.json) supports Node 20, and the warning would otherwise
  // land in every `gatehouse` command's output. An operator's explicit setting wins.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const location = `s3://${o.bucket}/${o.prefix}`;
  const httpsAgent = o.ca !== undefined ? new HttpsAgent({ ca: o.ca, keepAlive: true }) : undefined;
  const client = new S3Client({
    region: o.region,
    endpoint: o.endpoint,
    forcePathStyle: o.forcePathStyle,
    // Explicit: no credential provider chain (environment, ~/.aws, instance metadata).
    credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
    // The archiver has its own backoff; one attempt per call keeps its timing honest.
    maxAttempts: 1,
    requestHandler: { connectionTimeout: Math.min(o.requestTimeoutMs, 10_000), requestTimeout: o.requestTimeoutMs, throwOnRequestTimeout: true, ...(httpsAgent ? { httpsAgent } : {}) },
  });
  const anon = new Agent({ connect: { timeout: Math.min(o.requestTimeoutMs, 10_000), ...(o.ca !== undefined ? { ca: o.ca } : {}) }, headersTimeout: o.requestTimeoutMs, bodyTimeout: o.requestTimeoutMs });

  /** The unauthenticated URL of a key (or of the bucket with a query), as a browser would use it. */
  function anonUrl(key: string, query = ''): string {
    const path = key
      .split('/')
      .map((s) => encodeURIComponent(s))
      .join('/');
    if (o.endpoint !== undefined) {
      const u = new URL(o.endpoint);
      const basePath = u.pathname.replace(/\/$/, '');
      if (o.forcePathStyle) return `${u.protocol}//${u.host}${basePath}/${encodeURIComponent(o.bucket)}/${path}${query}`;
      return `${u.protocol}//${o.bucket}.${u.host}${basePath}/${path}${query}`;
    }
    return `https://${o.bucket}.s3.${o.region}.amazonaws.com/${path}${query}`;
  }

  /** An unauthenticated GET: null when it was refused (401/403), else why it shows anonymous access. */
  async function anonymousGet(url: string, what: string): Promise<string | null> {
    let res;
    try {
      res = await request(url, { method: 'GET', dispatcher: anon, headers: { range: 'bytes=0-0' } });
    } catch (err) {
      throw new ArchiveTargetError('unreachable', `${location}: anonymous probe of ${what} failed: ${(err as Error).message}`, { cause: err });
    }
    const body = (await res.body.text().catch(() => '')).slice(0, 2000);
    const s = res.statusCode;
    if (s === 401 || s === 403) return null;
    if (s >= 200 && s < 300) return `an unauthenticated GET of ${what} was answered ${s}`;
    // Answered "no such key" instead of "access denied": anonymous requests reach the
    // bucket's objects (AWS and MinIO answer 403 to callers without read access).
    if (s === 404 && body.includes('NoSuchKey')) return `an unauthenticated GET of ${what} was answered 404 NoSuchKey instead of 403`;
    if (s === 404 && body.includes('NoSuchBucket')) throw new ArchiveTargetError('not_found', `${location}: the bucket does not exist`);
    // Anything else (5xx, a proxy's page) decides nothing: fail closed, try again later.
    throw new ArchiveTargetError('unreachable', `${location}: anonymous probe of ${what}: unexpected HTTP ${s}`);
  }

  async function send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw classify(err, what, location);
    }
  }

  /**
   * Whether a bucket inspection call decided nothing: 404 (no policy, no lock
   * configuration), 405/501 (a call this server does not support), or 403 (credentials kept to
   * least privilege may not read the policy or ACL — the anonymous probe still decides).
   */
  function inconclusive(err: unknown): boolean {
    const s = status(err);
    return s !== undefined && ((s >= 400 && s < 500 && s !== 401) || s === 501);
  }

  async function get(key: string): Promise<Buffer | null> {
    checkKey(key);
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
      return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    } catch (err) {
      if (status(err) === 404 || (err as SdkError)?.name === 'NoSuchKey') return null;
      throw classify(err, `GET ${key}`, location);
    }
  }

  async function head(key: string): Promise<{ bytes: number } | null> {
    checkKey(key);
    try {
      const r = await client.send(new HeadObjectCommand({ Bucket: o.bucket, Key: key }));
      return { bytes: r.ContentLength ?? 0 };
    } catch (err) {
      if (status(err) === 404 || (err as SdkError)?.name === 'NotFound') return null;
      throw classify(err, `HEAD ${key}`, location);
    }
  }

  async function existing(key: string, body: Buffer): Promise<PutResult> {
    const have = await get(key);
    if (have === null) throw new ArchiveTargetError('error', `${location}: ${key} was reported to exist but cannot be read`);
    return have.equals(body) ? 'exists' : 'conflict';
  }

  async function listAll(prefix: string, delimiter?: string): Promise<{ keys: string[]; folders: string[] }> {
    const keys: string[] = [];
    const folders: string[] = [];
    let token: string | undefined;
    do {
      const r = await send(`LIST ${prefix}`, () => client.send(new ListObjectsV2Command({ Bucket: o.bucket, Prefix: prefix, Delimiter: delimiter, ContinuationToken: token })));
      for (const c of r.Contents ?? []) if (c.Key !== undefined) keys.push(c.Key);
      for (const p of r.CommonPrefixes ?? []) if (p.Prefix !== undefined) folders.push(p.Prefix);
      token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { keys, folders };
  }

  return {
    kind: 's3',
    location,
    prefix: o.prefix,
    async check(): Promise<TargetCheck> {
      await send('HEAD bucket', () => client.send(new HeadBucketCommand({ Bucket: o.bucket })));
      // 1. What the server says about its own policy (AWS computes IsPublic; MinIO and
      //    others may not implement it — then the checks below decide).
      try {
        const r = await client.send(new GetBucketPolicyStatusCommand({ Bucket: o.bucket }));
        if (r.PolicyStatus?.IsPublic === true) throw new ArchiveTargetError('public', `${location}: the bucket policy status is public`);
      } catch (err) {
        if (err instanceof ArchiveTargetError) throw err;
        if (!inconclusive(err)) throw classify(err, 'GetBucketPolicyStatus', location);
      }
      // 2. The policy's statements (what `mc anonymous get` reads on MinIO).
      try {
        const r = await client.send(new GetBucketPolicyCommand({ Bucket: o.bucket }));
        const why = r.Policy !== undefined ? policyAllowsAnonymousRead(r.Policy) : null;
        if (why !== null) throw new ArchiveTargetError('public', `${location}: ${why}`);
      } catch (err) {
        if (err instanceof ArchiveTargetError) throw err;
        if (!inconclusive(err)) throw classify(err, 'GetBucketPolicy', location);
      }
      // 3. ACL grants to everyone / every AWS account.
      try {
        const r = await client.send(new GetBucketAclCommand({ Bucket: o.bucket }));
        for (const g of r.Grants ?? []) {
          if (ALL_USERS.test(g.Grantee?.URI ?? '') && (g.Permission === 'READ' || g.Permission === 'FULL_CONTROL')) {
            throw new ArchiveTargetError('public', `${location}: the bucket ACL grants ${g.Permission} to ${g.Grantee?.URI}`);
          }
        }
      } catch (err) {
        if (err instanceof ArchiveTargetError) throw err;
        if (!inconclusive(err)) throw classify(err, 'GetBucketAcl', location);
      }
      // 4. Ask the endpoint itself, without credentials: a listing of the prefix, the newest
      //    object under it (or, in an empty archive, a key that does not exist).
      const listing = await anonymousGet(anonUrl('', `?list-type=2&max-keys=1&prefix=${encodeURIComponent(o.prefix)}`), `the bucket listing`);
      if (listing !== null) throw new ArchiveTargetError('public', `${location}: ${listing}`);
      const r = await send('LIST', () => client.send(new ListObjectsV2Command({ Bucket: o.bucket, Prefix: o.prefix, MaxKeys: 1 })));
      const probeKey = r.Contents?.[0]?.Key ?? `${o.prefix}.gatehouse-probe-${randomBytes(8).toString('hex')}`;
      const obj = await anonymousGet(anonUrl(probeKey), probeKey);
      if (obj !== null) throw new ArchiveTargetError('public', `${location}: ${obj}`);
      // Object Lock: retention is set on every object when the bucket has it enabled.
      try {
        const lc = await client.send(new GetObjectLockConfigurationCommand({ Bucket: o.bucket }));
        if (lc.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled') {
          const mode = lc.ObjectLockConfiguration.Rule?.DefaultRetention?.Mode;
          return { objectLock: { mode: mode === 'COMPLIANCE' || mode === 'GOVERNANCE' ? mode : null } };
        }
      } catch (err) {
        if (!inconclusive(err)) throw classify(err, 'GetObjectLockConfiguration', location);
      }
      return { objectLock: null };
    },
    async putOnce(key, body, opts = {}): Promise<PutResult> {
      checkKey(key);
      if ((await head(key)) !== null) return existing(key, body);
      const input: PutObjectCommandInput = { Bucket: o.bucket, Key: key, Body: body, ContentLength: body.length, ContentType: opts.contentType ?? 'application/octet-stream', IfNoneMatch: '*' };
      if (opts.retainUntil) {
        input.ObjectLockMode = opts.lockMode ?? 'GOVERNANCE';
        input.ObjectLockRetainUntilDate = opts.retainUntil;
      }
      try {
        await client.send(new PutObjectCommand(input));
        return 'written';
      } catch (err) {
        const s = status(err);
        // 412: the key exists (If-None-Match); 409: a concurrent conditional write won.
        if (s === 412 || s === 409) return existing(key, body);
        throw classify(err, `PUT ${key}`, location);
      }
    },
    get,
    head,
    async list(prefix) {
      return (await listAll(prefix)).keys.sort();
    },
    async folders(prefix) {
      return (await listAll(prefix, '/')).folders.map((p) => p.slice(prefix.length).replace(/\/$/, '')).sort();
    },
    async probeAnonymous(key) {
      checkKey(key);
      const why = await anonymousGet(anonUrl(key), key);
      if (why !== null) throw new ArchiveTargetError('public', `${location}: ${why}`);
    },
    async close() {
      client.destroy();
      httpsAgent?.destroy();
      await anon.close();
    },
  };
}
