import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, writeConfig } from '../testing/harness.js';
import { createTestCa } from '../testing/tls.js';

function check(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'check', ...args], { encoding: 'utf8' });
}

it('gatehouse check: 0 and "ok" for a valid config, warnings on stderr', () => {
  const file = writeConfig({ trusted_proxies: ['0.0.0.0/0'], sites: [{ id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } }] });
  const r = check('--config', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(1 site/);
  assert.match(r.stderr, /WARNING/);
  assert.match(r.stderr, /trusted_proxies\[0\]/);
});

it('gatehouse check: non-zero, every problem with its path', () => {
  const file = writeConfig({ bogus: true, sites: [{ id: 'Bad Id', hosts: [], upstream: { urls: ['nope'] } }] });
  const r = check('--config', file);
  assert.equal(r.status, 1);
  for (const path of ['bogus', 'sites[0].id', 'sites[0].hosts', 'sites[0].upstream.urls[0]']) assert.ok(r.stderr.includes(path), `${path} missing:\n${r.stderr}`);
});

it('gatehouse check: usage errors exit 2', () => {
  assert.equal(check().status, 2);
  assert.equal(check('--nope').status, 2);
  assert.equal(spawnSync(process.execPath, [BIN, 'frobnicate']).status, 2);
});

it('gatehouse run refuses an invalid config and exits 1', () => {
  const file = writeConfig({ sites: [] });
  const r = spawnSync(process.execPath, [BIN, 'run', '--config', file], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sites/);
});

it('gatehouse check: a private key or a certificate given as a token-verification key is a config error with its path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-keys-'));
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(join(dir, 'public.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'private.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'sec1.pem'), pair.privateKey.export({ type: 'sec1', format: 'pem' }));
  writeFileSync(join(dir, 'cert.pem'), (await createTestCa()).rootPem);
  writeFileSync(join(dir, 'jwks-private.json'), JSON.stringify({ keys: [{ ...pair.privateKey.export({ format: 'jwk' }), kid: 'p' }] }));
  writeFileSync(join(dir, 'jwks.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
  const site = { id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] }, auth: {} };
  const issuer = (id: string, extra: object) => ({ id, iss: id, ...extra });
  const file = writeConfig(
    {
      auth: {
        issuers: [
          issuer('good', { keys: [{ kid: 'k', file: 'public.pem' }] }),
          issuer('priv', { keys: [{ kid: 'ok', file: 'public.pem' }, { kid: 'k', file: 'private.pem' }] }),
          issuer('sec1', { keys: [{ kid: 'k', file: 'sec1.pem' }] }),
          issuer('cert', { keys: [{ kid: 'k', file: 'cert.pem' }] }),
          issuer('jwks', { jwks_file: 'jwks-private.json' }),
          issuer('pem', { jwks_file: 'jwks.pem' }),
        ],
      },
      sites: [site],
    },
    dir,
  );
  const r = check('--config', file);
  assert.equal(r.status, 1, r.stdout);
  const lines = r.stderr.split('\n');
  const line = (path: string) => lines.find((l) => l.includes(path)) ?? assert.fail(`${path} missing:\n${r.stderr}`);
  assert.match(line('auth.issuers[1].keys[1].file'), /private key/);
  assert.match(line('auth.issuers[2].keys[0].file'), /private key/);
  assert.match(line('auth.issuers[3].keys[0].file'), /certificate/);
  assert.match(line('auth.issuers[4].jwks_file'), /private key material/);
  assert.match(line('auth.issuers[5].jwks_file'), /PEM file, not a JWKS/);
  assert.ok(!r.stderr.includes('auth.issuers[0]'), r.stderr);
  assert.ok(!r.stderr.includes('auth.issuers[1].keys[0]'), r.stderr);
});

it('gatehouse check: an admin token file under 32 bytes is a config error that never shows the token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-admin-token-'));
  const site = { id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } };
  const run = (content: string) => {
    writeFileSync(join(dir, 'admin.token'), content, { mode: 0o600 });
    return check('--config', writeConfig({ admin: { token_file: 'admin.token' }, sites: [site] }, dir));
  };
  for (const short of ['', '\n', 'sh0rt-s3cret', `${'x'.repeat(31)}\n`]) {
    const r = run(short);
    assert.equal(r.status, 1, `${JSON.stringify(short)}: ${r.stdout}`);
    assert.match(r.stderr, /admin\.token_file.*at least 32 bytes/);
    if (short.trim() !== '') assert.ok(!r.stderr.includes(short.trim()), r.stderr);
  }
  const ok = run(`${'x'.repeat(32)}\n`);
  assert.equal(ok.status, 0, ok.stderr);
});
