import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../config/load.js';
import { createMetrics } from '../observability/metrics.js';
import { issueCertificate, type Ca, type IssueOptions } from '../pki/ca.js';
import { sleep, writeConfig } from '../testing/harness.js';
import { createTestCa } from '../testing/tls.js';
import { renewalBackoff, TlsManager } from './tls.js';

it('renewalBackoff doubles from 1 s and stops at the maximum', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => renewalBackoff(n, 10_000)), [1000, 2000, 4000, 8000, 10_000]);
  assert.equal(renewalBackoff(500, 300_000), 300_000);
});

it('a failing renewal is logged, counted, retried with backoff and flagged by the expiring gauge; the old certificate keeps serving until a retry succeeds', async () => {
  const ca = await createTestCa();
  const file = writeConfig({
    listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
    ca: { dir: ca.caDir, password_file: ca.passwordFile, lifetime: '3s' },
    tls: { expiry_warning: '2s', check_interval: '100ms' },
    sites: [{ id: 'app', hosts: ['app.test'], upstream: { urls: ['http://127.0.0.1:1'] } }],
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const metrics = createMetrics({ version: 'test', defaultMetrics: false });
  let failing = false;
  const issue = (c: Ca, o: IssueOptions) => (failing ? Promise.reject(new Error('CA offline')) : issueCertificate(c, o));
  const loaded = loadConfig(file);
  const tls = new TlsManager({ config: loaded.config, dir: loaded.dir, metrics, log: pino({ level: 'debug' }, sink), issue });
  try {
    await tls.start();
    const first = tls.currentSerial('site/app');
    assert.ok(first);
    const gauge = async () => (await metrics.tlsCertExpiring.get()).values.find((v) => v.labels.name === 'site/app')?.value;
    assert.equal(await gauge(), 0);
    failing = true;
    // Renewal is due at 2 s; it fails, then retries after 1 s and fails again.
    const end = Date.now() + 10_000;
    while (logs.filter((l) => l.event === 'tls_renewal_failed').length < 2) {
      if (Date.now() > end) throw new Error('no renewal failures logged');
      await sleep(50);
    }
    const failures = logs.filter((l) => l.event === 'tls_renewal_failed');
    assert.deepEqual(failures.map((l) => [l.attempt, l.retry_in_ms]), [
      [1, 1000],
      [2, 2000],
    ]);
    assert.equal(failures[0]?.err, 'CA offline');
    assert.equal((await metrics.tlsRenewalFailures.get()).values.find((v) => v.labels.name === 'site/app')?.value, 2);
    assert.equal(await gauge(), 1, 'within expiry_warning of the end');
    assert.equal(tls.currentSerial('site/app'), first, 'the old certificate keeps serving');
    failing = false;
    while (tls.currentSerial('site/app') === first) {
      if (Date.now() > end) throw new Error('the retry did not renew');
      await sleep(50);
    }
    assert.equal(await gauge(), 0);
  } finally {
    tls.close();
  }
});
