import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type Problem } from './load.js';

function problems(config: unknown): Problem[] {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tlscfg-'));
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, stringify(config));
  try {
    loadConfig(file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

it('TLS config: every problem is listed with its path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tlscfg-'));
  const loose = join(dir, 'loose.key');
  writeFileSync(loose, 'key', { mode: 0o644 });
  const ps = problems({
    listen: [
      { address: '127.0.0.1:0', tls: { internal_ca: true } },
      { address: '127.0.0.1:0', tls: {} },
      { address: '127.0.0.1:0', tls: { cert_file: join(dir, 'missing.crt'), key_file: loose } },
      { address: '127.0.0.1:0', tls: { internal_ca: true }, redirect_https: true },
    ],
    sites: [
      { id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'], tls: { client_cert: 'internal', internal_ca: true } } },
      { id: 'b', hosts: ['b.test'], upstream: { urls: ['https://127.0.0.1:1'], tls: { ca_file: join(dir, 'nope.pem'), client_cert: { cert_file: join(dir, 'c.crt'), key_file: loose } } } },
    ],
  });
  const at = (path: string, re: RegExp) =>
    assert.ok(
      ps.some((p) => p.path === path && re.test(p.message)),
      `no problem at ${path} matching ${re}; got:\n${ps.map((p) => `${p.path}: ${p.message}`).join('\n')}`,
    );
  at('listen[0].tls.internal_ca', /needs a top-level ca block/);
  at('listen[1].tls', /cert_file and key_file, or internal_ca/);
  at('listen[2].tls.cert_file', /cannot read/);
  at('listen[2].tls.key_file', /must not be accessible/);
  at('listen[3].redirect_https', /remove either tls or redirect_https/);
  at('sites[0].upstream.tls', /https:\/\/ upstreams only/);
  at('sites[0].upstream.tls.internal_ca', /needs a top-level ca block/);
  at('sites[0].upstream.tls.client_cert', /needs a top-level ca block/);
  at('sites[1].upstream.tls.ca_file', /cannot read/);
  at('sites[1].upstream.tls.client_cert.cert_file', /cannot read/);
  at('sites[1].upstream.tls.client_cert.key_file', /must not be accessible/);
});

it('TLS config: a ca block must point at an initialised CA and a private password file; redirect needs an HTTPS listener', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tlscfg-'));
  const pw = join(dir, 'pw');
  writeFileSync(pw, 'hunter2-value', { mode: 0o640 });
  const ps = problems({
    listen: [{ address: '127.0.0.1:0', redirect_https: true }],
    ca: { dir: join(dir, 'ca'), password_file: pw, lifetime: '1h' },
    sites: [{ id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } }],
  });
  const paths = ps.map((p) => p.path);
  for (const p of ['ca.dir', 'ca.password_file', 'listen']) assert.ok(paths.includes(p), `${p} missing: ${paths.join(', ')}`);
  assert.ok(!ps.some((p) => p.message.includes('hunter2')), 'no secret in a message');
  const short = problems({ ca: { dir: dir, password_file: pw, lifetime: '1s' }, sites: [{ id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } }] });
  assert.ok(short.some((p) => p.path === 'ca.lifetime' && /at least 3s/.test(p.message)));
});
