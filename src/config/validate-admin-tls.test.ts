/**
 * Config checks for the HTTPS admin listener and client-certificate authentication
 * (admin.tls, admin.client_certificates): every problem at once, each with its path, as
 * `gatehouse check` lists them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { BIN } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { ConfigError, loadConfig, type Problem } from './load.js';

const SITES = [{ id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } }];

function write(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-admincfg-'));
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

function problems(config: unknown): Problem[] {
  try {
    loadConfig(write(config));
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

function expectAt(ps: readonly Problem[], path: string, re: RegExp): void {
  assert.ok(
    ps.some((p) => p.path === path && re.test(p.message)),
    `no problem at ${path} matching ${re}; got:\n${ps.map((p) => `${p.path}: ${p.message}`).join('\n')}`,
  );
}

describe('admin.tls and admin.client_certificates config', () => {
  let ca: TestCa;
  let dir: string;
  before(async () => {
    ca = await createTestCa();
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-admincfg-'));
  });

  it('client certificates without admin.tls, without a trust pool, or with an empty allow list are errors, all listed at once', () => {
    const ps = problems({ admin: { listen: '127.0.0.1:0', client_certificates: { allow: [] } }, sites: SITES });
    expectAt(ps, 'admin.client_certificates', /need an HTTPS admin listener: add admin.tls/);
    expectAt(ps, 'admin.client_certificates.ca_file', /give ca_file .* or a top-level ca block/);
    expectAt(ps, 'admin.client_certificates.allow', /an empty list would allow nobody/);
    // Leaving `allow` out is the same as an empty list: never "any certificate from the CA".
    const missing = problems({ admin: { tls: { internal_ca: true }, client_certificates: {} }, ca: { dir: ca.caDir, password_file: ca.passwordFile }, sites: SITES });
    expectAt(missing, 'admin.client_certificates.allow', /an empty list would allow nobody/);
  });

  it('allow entries: typed, exact, no wildcards; admin.tls is checked like a listener tls block', () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, 'key', { mode: 0o644 });
    const ps = problems({
      admin: {
        listen: ':0',
        tls: { internal_ca: true },
        client_certificates: { ca_file: join(dir, 'missing.pem'), allow: ['*', 'cn:*', 'ops-alice', 'dns:not a name', 'uri:no scheme', 'CN:ops-alice', 'dns:*.ops.internal', 'cn:ops-alice'] },
      },
      sites: SITES,
    });
    expectAt(ps, 'admin.tls.internal_ca', /needs a top-level ca block/);
    expectAt(ps, 'admin.tls.names', /listens on every interface/);
    expectAt(ps, 'admin.client_certificates.ca_file', /cannot read .*missing\.pem/);
    expectAt(ps, 'admin.client_certificates.allow[0]', /cn:NAME .* dns:NAME or uri:URI/);
    expectAt(ps, 'admin.client_certificates.allow[1]', /wildcards are not supported/);
    expectAt(ps, 'admin.client_certificates.allow[2]', /cn:NAME .* dns:NAME or uri:URI/);
    expectAt(ps, 'admin.client_certificates.allow[3]', /not a DNS name/);
    expectAt(ps, 'admin.client_certificates.allow[4]', /not an absolute URI/);
    expectAt(ps, 'admin.client_certificates.allow[5]', /cn:NAME .* dns:NAME or uri:URI/);
    expectAt(ps, 'admin.client_certificates.allow[6]', /wildcards are not supported/);
    assert.ok(!ps.some((p) => p.path === 'admin.client_certificates.allow[7]'), 'cn:ops-alice is fine');

    const files = problems({
      admin: { tls: { cert_file: join(dir, 'missing.crt'), key_file: loose, names: ['admin.internal'] }, client_certificates: { ca_file: loose, allow: ['cn:ops-alice'] } },
      sites: SITES,
    });
    expectAt(files, 'admin.tls.cert_file', /cannot read/);
    expectAt(files, 'admin.tls.key_file', /must not be accessible by group or others/);
    expectAt(files, 'admin.tls.names', /names apply to an internal_ca certificate/);
    expectAt(files, 'admin.client_certificates.ca_file', /no PEM certificate/);
    expectAt(problems({ admin: { tls: {} }, sites: SITES }), 'admin.tls', /give cert_file and key_file, or internal_ca: true/);
    expectAt(problems({ admin: { tls: { internal_ca: true, names: ['bad name'] } }, ca: { dir: ca.caDir, password_file: ca.passwordFile }, sites: SITES }), 'admin.tls.names[0]', /not a DNS name or IP address/);
  });

  it('inline secrets stay refused in the admin block, without echoing the value', () => {
    const ps = problems({
      admin: { token: 'the-admin-token-value', tls: { internal_ca: true, private_key: '-----BEGIN PRIVATE KEY-----' }, client_certificates: { allow: ['cn:ops-alice'], password: 'hunter2-value' } },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      sites: SITES,
    });
    expectAt(ps, 'admin.token', /inline secret/);
    expectAt(ps, 'admin.tls.private_key', /inline secret/);
    expectAt(ps, 'admin.client_certificates.password', /inline secret/);
    for (const p of ps) assert.ok(!/the-admin-token-value|hunter2-value|BEGIN PRIVATE KEY/.test(p.message), p.message);
  });

  it('a valid HTTPS admin listener with client certificates: the internal root by default, or a ca_file bundle', () => {
    const internal = loadConfig(write({ admin: { tls: { internal_ca: true }, client_certificates: { allow: ['cn:ops-alice', 'uri:spiffe://corp.example/ops'] } }, ca: { dir: ca.caDir, password_file: ca.passwordFile }, sites: SITES }));
    assert.deepEqual(internal.config.admin.client_certificates, { allow: ['cn:ops-alice', 'uri:spiffe://corp.example/ops'] });
    assert.equal(internal.warnings.length, 0);
    const bundle = join(dir, 'clients.pem');
    writeFileSync(bundle, ca.rootPem + ca.ca.intermediatePem);
    const key = join(dir, 'admin.key');
    const crt = join(dir, 'admin.crt');
    writeFileSync(key, 'not checked here beyond its mode', { mode: 0o600 });
    writeFileSync(crt, ca.rootPem);
    const files = loadConfig(write({ admin: { listen: ':0', tls: { cert_file: crt, key_file: key }, client_certificates: { ca_file: bundle, allow: ['dns:ops.internal'] } }, sites: SITES }));
    assert.equal(files.config.admin.client_certificates?.ca_file, bundle);
  });

  it('gatehouse check lists the admin problems with their paths and exits 1', () => {
    const file = write({ admin: { listen: '127.0.0.1:0', client_certificates: { allow: ['*'] } }, sites: SITES });
    const r = spawnSync(process.execPath, [BIN, 'check', '--config', file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    for (const path of ['admin.client_certificates:', 'admin.client_certificates.ca_file:', 'admin.client_certificates.allow[0]:']) assert.ok(r.stderr.includes(`error   ${path}`), `${path} missing in:\n${r.stderr}`);
  });
});
