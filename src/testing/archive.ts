/** Test helpers for the audit archive integration tests (not public API). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditFiles } from '../audit/test-files.js';
import { request, sleep } from './harness.js';
import type { TestS3 } from './s3-server.js';

/** The test server's key pair in two secret files (mode 0600) in the audit files' directory. */
export function s3Credentials(files: AuditFiles, s3: TestS3): { id: string; secret: string } {
  const id = join(files.dir, 's3-id');
  const secret = join(files.dir, 's3-secret');
  writeFileSync(id, s3.accessKeyId + '\n', { mode: 0o600 });
  writeFileSync(secret, s3.secretAccessKey + '\n', { mode: 0o600 });
  return { id, secret };
}

/** An `audit.archive` block for the test server (prefix gatehouse/, short interval and backoff). */
export function archiveBlock(s3: TestS3, c: { id: string; secret: string }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    s3: { bucket: s3.bucket, prefix: 'gatehouse/', endpoint: s3.endpoint, access_key_id_file: c.id, secret_access_key_file: c.secret, request_timeout: '2s' },
    interval: '1s',
    segment_records: 20,
    retry_max: '1s',
    ...extra,
  };
}

/** The sum of a metric's series on the admin listener. */
export async function metric(adminUrl: string, name: string): Promise<number> {
  const r = await request(`${adminUrl}/metrics`);
  let sum = 0;
  for (const line of r.body.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.split(' ').pop());
  return sum;
}

/** Polls until `fn` holds (what is awaited is named in the timeout error). */
export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
