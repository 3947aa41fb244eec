/** listen[].tls.acme: every problem with its path, at once; an inline EAB key is refused; a good block loads. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig, type Problem } from '../../config/load.js';
import { decodeEabKey } from './validate.js';

function load(config: unknown): { problems: Problem[]; ok: boolean } {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acmecfg-'));
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, stringify(config));
  try {
    return { problems: [...loadConfig(file).warnings], ok: true };
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return { problems: [...err.problems], ok: false };
  }
}

const site = (id: string, hosts: string[]) => ({ id, hosts, upstream: { urls: ['http://127.0.0.1:1'] } });

it('ACME config: every problem is listed with its path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acmecfg-'));
  const loose = join(dir, 'eab.key');
  writeFileSync(loose, 'c2VjcmV0c2VjcmV0c2VjcmV0', { mode: 0o644 });
  const short = join(dir, 'short.key');
  writeFileSync(short, 'c2hvcnQ', { mode: 0o600 });
  const { problems, ok } = load({
    listen: [
      { address: '127.0.0.1:1443', tls: { acme: { directory: 'http://ca.test/dir', eab: { kid: 'k', hmac_key_file: loose }, ca_root: join(dir, 'missing.pem'), store: 'postgres', challenge: 'tls-alpn-01' } } },
      { address: '127.0.0.1:2443', tls: { internal_ca: true, acme: { directory: 'https://ca.test/dir' } } },
      { address: '127.0.0.1:3443', tls: { acme: { directory: 'https://ca.test/dir', eab: { kid: 'k', hmac_key_file: short } } } },
    ],
    sites: [site('wild', ['*.wild.test']), site('ip', ['10.0.0.1'])],
  });
  assert.equal(ok, false);
  const at = (path: string, re: RegExp) => assert.ok(problems.some((p) => p.path === path && re.test(p.message)), `${path} ${re}: ${JSON.stringify(problems)}`);
  at('listen[0].tls.acme.directory', /https:\/\//);
  at('listen[0].tls.acme.eab.hmac_key_file', /mode 0644/);
  at('listen[0].tls.acme.ca_root', /ENOENT/);
  at('listen[0].tls.acme.store', /state\.postgres/);
  at('listen[0].tls.acme.challenge', /use http-01/);
  at('listen[1].tls', /one of acme, internal_ca or cert_file/);
  at('listen[1].tls.acme', /same acme block/);
  at('listen[2].tls.acme.eab.hmac_key_file', /base64url HMAC key of at least 16 bytes/);
  at('sites[0].hosts[0]', /dns-01/);
  at('sites[1].hosts', /no DNS name/);
});

it('ACME config: http-01 needs a plain-HTTP listener; an inline EAB key is an inline secret', () => {
  const a = load({ listen: [{ address: '127.0.0.1:1443', tls: { acme: { directory: 'https://ca.test/dir' } } }], sites: [site('app', ['app.test'])] });
  assert.ok(a.problems.some((p) => p.path === 'listen[0].tls.acme.challenge' && /plain-HTTP listener/.test(p.message)), JSON.stringify(a.problems));
  const b = load({ listen: [{ address: '127.0.0.1:1443', tls: { acme: { directory: 'https://ca.test/dir', eab: { kid: 'k', hmac_key: 'c2VjcmV0' } } } }], sites: [site('app', ['app.test'])] });
  assert.equal(b.ok, false);
  assert.ok(b.problems.some((p) => p.path === 'listen[0].tls.acme.eab.hmac_key'), JSON.stringify(b.problems));
});

it('ACME config: a good block loads, with a warning when no plain listener is on port 80', () => {
  const { ok, problems } = load({
    listen: [{ address: '127.0.0.1:8080' }, { address: '127.0.0.1:8443', tls: { acme: { directory: 'https://ca.test/dir', email: 'ops@example.com' } } }],
    sites: [site('app', ['app.test', 'www.app.test'])],
  });
  assert.equal(ok, true, JSON.stringify(problems));
  assert.ok(problems.some((p) => p.severity === 'warning' && p.path === 'listen[1].tls.acme.challenge' && /port 80/.test(p.message)));
});

it('EAB keys: base64url of at least 16 bytes', () => {
  assert.equal(decodeEabKey('zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W')?.length, 48);
  assert.equal(decodeEabKey('c2hvcnQ'), null, 'too short');
  assert.equal(decodeEabKey('not base64!'), null);
});
