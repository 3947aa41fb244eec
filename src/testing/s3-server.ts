/**
 * An S3-compatible server for the archive tests, on loopback: `s3rver` (npm, an
 * independent implementation of the S3 REST/XML protocol, run in this process) behind a
 * small front that adds what s3rver lacks and real servers (AWS, MinIO, Ceph) have:
 *
 * - authentication: every request must carry a valid AWS Signature V4 for this server's
 *   own random key pair, verified here from the raw request (s3rver accepts anonymous
 *   and unverified V4 requests); unauthenticated requests get 403 AccessDenied — unless
 *   the bucket is made public (`publicAccess: 'anonymous'`: anonymous GETs are served, as
 *   `mc anonymous set download` does), or its policy says so (`'policy'`);
 * - conditional writes: a PUT with `If-None-Match: *` on an existing key gets 412;
 * - Object Lock (`objectLock: true`): GetObjectLockConfiguration reports it enabled, the
 *   retention headers of each PUT are recorded, and a locked object cannot be replaced;
 * - an outage: `stop()` closes the listener and every connection, `start()` listens on
 *   the same port again.
 *
 * Tampering in tests goes through `raw` (s3rver directly, as someone with write access
 * to the bucket and no Object Lock would).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

export interface TestS3Options {
  readonly bucket?: string;
  readonly publicAccess?: 'no' | 'anonymous' | 'policy';
  readonly objectLock?: boolean;
  /** Credentials kept to least privilege: the bucket policy, ACL and lock calls answer 403. */
  readonly denyInspection?: boolean;
}

export interface TestS3 {
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** s3rver itself (no authentication): for tampering and inspection. */
  readonly raw: string;
  /** Retention headers of each PUT, by key (objectLock mode). */
  readonly locks: Map<string, { mode: string; retainUntil: string }>;
  /** Requests refused for lack of a valid signature. */
  refusedUnsigned: number;
  publicAccess: 'no' | 'anonymous' | 'policy';
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function xmlError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

/** Verifies an AWS Signature V4 Authorization header against the request as received. */
function verifySigV4(req: IncomingMessage, body: Buffer, keyId: string, secret: string): string | null {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (m === null) return 'malformed Authorization header';
  const [, id, date, region, service, signed, signature] = m as unknown as [string, string, string, string, string, string, string];
  if (id !== keyId) return 'unknown access key id';
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!amzDate.startsWith(date)) return 'x-amz-date does not match the credential scope';
  const t = Date.parse(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  if (!(Math.abs(Date.now() - t) < 15 * 60_000)) return 'request time too skewed';
  const payload = String(req.headers['x-amz-content-sha256'] ?? '');
  if (/^[0-9a-f]{64}$/.test(payload) && createHash('sha256').update(body).digest('hex') !== payload) return 'payload hash mismatch';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const params = query === '' ? [] : query.split('&').map((p) => {
    const i = p.indexOf('=');
    const k = decodeURIComponent(i < 0 ? p : p.slice(0, i));
    const v = i < 0 ? '' : decodeURIComponent(p.slice(i + 1).replace(/\+/g, '%20'));
    return [enc(k), enc(v)] as [string, string];
  });
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const names = signed.split(';');
  const headers = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, path, params.map(([k, v]) => `${k}=${v}`).join('&'), headers, signed, payload].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let k: Buffer = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  for (const part of [region, service, 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  return createHmac('sha256', k).update(toSign).digest('hex') === signature ? null : 'signature does not match';
}

export async function startTestS3(opts: TestS3Options = {}): Promise<TestS3> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as S3rverCtor;
  const bucket = opts.bucket ?? 'audit';
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-s3-'));
  const s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const inner = await s3rver.run();
  const raw = `http://127.0.0.1:${inner.port}`;
  const accessKeyId = `GH${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  const locks = new Map<string, { mode: string; retainUntil: string }>();
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const headers = { ...req.headers };
    // s3rver does its own (incomplete) signature handling; the front has verified it.
    delete headers.authorization;
    // s3rver encrypts its listing continuation tokens with DES, which OpenSSL 3 (Node ≥ 17)
    // no longer has: a truncated listing fails with 500. Asked without max-keys it lists up
    // to 1000 keys in one page, far more than any test writes.
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.searchParams.has('list-type')) u.searchParams.delete('max-keys');
    const up = httpRequest(`${raw}${u.pathname}${u.search}`, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => xmlError(res, 502, 'InternalError', 'backend failed'));
    up.end(body);
  };

  const exists = (path: string) =>
    new Promise<boolean>((ok) => {
      const r = httpRequest(`${raw}${path}`, { method: 'HEAD' }, (x) => {
        x.resume();
        ok(x.statusCode === 200);
      });
      r.on('error', () => ok(false));
      r.end();
    });

  const s3: TestS3 = {
    get endpoint() {
      return `http://127.0.0.1:${port}`;
    },
    bucket,
    accessKeyId,
    secretAccessKey,
    raw,
    locks,
    refusedUnsigned: 0,
    publicAccess: opts.publicAccess ?? 'no',
    async stop() {
      const srv = server;
      server = null;
      if (srv === null) return;
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => srv.close(() => ok()));
    },
    start: () => listen(),
    async close() {
      await s3.stop();
      await s3rver.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const sub = url.searchParams;
    const method = req.method ?? 'GET';
    if (req.headers.authorization === undefined) {
      const anonymousRead = s3.publicAccess === 'anonymous' && (method === 'GET' || method === 'HEAD');
      if (!anonymousRead) {
        s3.refusedUnsigned++;
        return xmlError(res, 403, 'AccessDenied', 'Access Denied');
      }
      return forward(req, res, body);
    }
    const bad = verifySigV4(req, body, accessKeyId, secretAccessKey);
    if (bad !== null) return xmlError(res, 403, 'SignatureDoesNotMatch', bad);
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const isBucket = parts.length === 1;
    if (isBucket && opts.denyInspection && ['policyStatus', 'policy', 'acl', 'object-lock'].some((k) => sub.has(k))) return xmlError(res, 403, 'AccessDenied', 'Access Denied');
    if (isBucket && sub.has('policyStatus')) {
      if (s3.publicAccess === 'policy') return xmlError(res, 501, 'NotImplemented', 'bucket policies are not supported by this test server');
      res.writeHead(200, { 'content-type': 'application/xml' });
      return res.end(`<?xml version="1.0" encoding="UTF-8"?><PolicyStatus><IsPublic>${s3.publicAccess !== 'no'}</IsPublic></PolicyStatus>`);
    }
    if (isBucket && sub.has('policy') && method === 'GET') {
      if (s3.publicAccess !== 'policy') return xmlError(res, 404, 'NoSuchBucketPolicy', 'The bucket policy does not exist');
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }] }));
    }
    if (isBucket && sub.has('object-lock')) {
      if (!opts.objectLock) return xmlError(res, 404, 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket');
      res.writeHead(200, { 'content-type': 'application/xml' });
      return res.end('<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>');
    }
    if (parts.length >= 2 && (method === 'PUT' || method === 'DELETE')) {
      const key = decodeURIComponent(parts.slice(1).join('/'));
      const lock = locks.get(key);
      if (lock !== undefined && Date.parse(lock.retainUntil) > Date.now()) return xmlError(res, 403, 'AccessDenied', 'Access Denied because object protected by object lock');
      if (method === 'PUT' && req.headers['if-none-match'] === '*' && (await exists(url.pathname))) return xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
      if (method === 'PUT' && opts.objectLock && req.headers['x-amz-object-lock-mode'] !== undefined) {
        locks.set(key, { mode: String(req.headers['x-amz-object-lock-mode']), retainUntil: String(req.headers['x-amz-object-lock-retain-until-date']) });
      }
    }
    return forward(req, res, body);
  };

  function listen(): Promise<void> {
    return new Promise((ok, fail) => {
      const srv = createServer((req, res) => {
        handle(req, res).catch(() => {
          if (!res.headersSent) xmlError(res, 500, 'InternalError', 'front failed');
          else res.destroy();
        });
      });
      srv.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      srv.once('error', fail);
      srv.listen(port, '127.0.0.1', () => {
        port = (srv.address() as AddressInfo).port;
        server = srv;
        ok();
      });
    });
  }
  await listen();
  return s3;
}
