/**
 * The audit archive's configuration and target checks: a public bucket is refused by
 * `gatehouse check` and by the gateway's start; the config rules (one target, a
 * checkpoint key, safe credential files, https off loopback) are reported with paths.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles } from '../audit/test-files.js';
import { archiveBlock, s3Credentials as credentials } from '../testing/archive.js';
import { startTestS3 } from '../testing/s3-server.js';
import { baseConfig, BIN, startGateway, startUpstream, writeConfig } from '../testing/harness.js';

const run = promisify(execFile);

describe('audit archive: check and config', () => {
  it('a public bucket: `gatehouse check` reports it as an error and the gateway does not start', { timeout: 240_000 }, async () => {
    const up = await startUpstream();
    const s3 = await startTestS3({ publicAccess: 'anonymous' });
    const files = auditFiles();
    const c = credentials(files, s3);
    const config = baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: files.block({ archive: archiveBlock(s3, c) }) });
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-archive-check-'));
    try {
      const file = writeConfig(config, dir);
      const r = await run(process.execPath, [BIN, 'check', '--config', file]).catch((e: { code: number; stderr: string }) => e);
      assert.equal((r as { code: number }).code, 1);
      // (The test server reports a public policy status too, as AWS does; without it the probe decides.)
      assert.match((r as { stderr: string }).stderr, /audit\.archive\.s3: s3:\/\/audit\/gatehouse\/: (the bucket policy status is public|an unauthenticated GET)/);
      await assert.rejects(startGateway(config), /audit archive: s3:\/\/audit\/gatehouse\/: (the bucket policy status is public|an unauthenticated GET)/);
      // Private again: check passes (with the warning that the bucket has no Object Lock).
      s3.publicAccess = 'no';
      const ok = await run(process.execPath, [BIN, 'check', '--config', file]);
      assert.match(ok.stdout, /ok/);
      assert.match(ok.stderr, /audit\.archive\.object_lock: .*has no Object Lock/);
    } finally {
      await up.close();
      await s3.close();
      rmSync(files.dir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('config: archive needs a checkpoint key, one target, credential files with safe modes, and https off loopback', async () => {
    const files = auditFiles();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-archive-cfg-'));
    try {
      const loose = join(files.dir, 'loose');
      writeFileSync(loose, 'AKIA\n', { mode: 0o644 });
      const block = files.block({
        checkpoint_key_file: undefined,
        archive: { directory: join(dir, 'a'), s3: { bucket: 'audit', endpoint: 'http://minio.internal:9000', access_key_id_file: loose, secret_access_key_file: join(files.dir, 'missing') } },
      });
      const file = writeConfig(baseConfig('http://127.0.0.1:1', {}, { state: { dir: files.stateDir }, audit: block }), dir);
      const r = await run(process.execPath, [BIN, 'check', '--config', file]).catch((e: { code: number; stderr: string }) => e);
      const err = (r as { stderr: string }).stderr;
      assert.equal((r as { code: number }).code, 1);
      assert.match(err, /audit\.archive: set exactly one of audit\.archive\.directory and audit\.archive\.s3/);
      assert.match(err, /audit\.archive: archiving needs audit\.checkpoint_key_file/);
      assert.match(err, /audit\.archive\.s3\.access_key_id_file: secret file .* has mode 0644/);
      assert.match(err, /audit\.archive\.s3\.secret_access_key_file: cannot read secret file/);
      assert.match(err, /audit\.archive\.s3\.endpoint: plain http is only accepted to a loopback address/);
    } finally {
      rmSync(files.dir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
