import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { BIN } from '../testing/harness.js';
import { caPaths, initCa, issueCertificate, loadCa } from './ca.js';
import { keyEncryption, PBKDF2_ITERATIONS } from './encrypted-key.js';

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8' });
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'ca', ...args], { encoding: 'utf8' });
}

describe('internal CA (gatehouse ca, verified with openssl)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-ca-'));
  const ca = join(dir, 'ca');
  const pw = join(dir, 'pw');
  const rootPw = join(dir, 'root-pw');

  before(() => {
    writeFileSync(pw, 'intermediate secret\n', { mode: 0o600 });
    writeFileSync(rootPw, 'root secret pass\n', { mode: 0o600 });
    const r = cli('init', '--dir', ca, '--password-file', pw, '--root-password-file', rootPw);
    assert.equal(r.status, 0, r.stderr);
  });

  it('ca init: a 10-year P-256 root and an intermediate with pathlen 0; keys 0600 and encrypted', () => {
    const p = caPaths(ca);
    for (const key of [p.rootKey, p.intermediateKey]) {
      assert.equal(statSync(key).mode & 0o777, 0o600, key);
      assert.match(readFileSync(key, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    }
    // The password decrypts the key (OpenSSL reads what node:crypto wrote); a wrong one does not.
    openssl('pkey', '-in', p.intermediateKey, '-passin', `file:${pw}`, '-noout');
    assert.throws(() => execFileSync('openssl', ['pkey', '-in', p.intermediateKey, '-passin', 'pass:wrong', '-noout'], { stdio: 'pipe' }));
    const root = openssl('x509', '-in', p.rootCert, '-noout', '-text');
    assert.match(root, /NIST CURVE: P-256/);
    assert.match(root, /CA:TRUE/);
    assert.match(root, /Certificate Sign, CRL Sign/);
    const rc = new X509Certificate(readFileSync(p.rootCert));
    const years = (Date.parse(rc.validTo) - Date.parse(rc.validFrom)) / (365 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `root valid ${years} years`);
    const inter = openssl('x509', '-in', p.intermediateCert, '-noout', '-text');
    assert.match(inter, /CA:TRUE, pathlen:0/);
    assert.match(inter, /NIST CURVE: P-256/);
    assert.match(inter, /Authority Key Identifier/);
    assert.match(openssl('verify', '-CAfile', p.rootCert, p.intermediateCert), /OK/);
  });

  it('ca init refuses to overwrite an existing CA, and a password file readable by others', () => {
    const again = cli('init', '--dir', ca, '--password-file', pw);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);
    const loose = join(dir, 'loose');
    writeFileSync(loose, 'intermediate secret\n', { mode: 0o644 });
    const r = cli('init', '--dir', join(dir, 'other'), '--password-file', loose);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /must not be accessible/);
    assert.ok(!r.stderr.includes('intermediate secret'));
  });

  it('ca issue: a server+client leaf with DNS and IP SANs that openssl verifies', () => {
    const out = join(dir, 'svc');
    const r = cli('issue', '--dir', ca, '--password-file', pw, '--name', 'svc.internal', '--san', 'api.internal', '--ip', '10.1.2.3', '--ip', '::1', '--client', '--server', '--lifetime', '2h', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(`${out}.key`).mode & 0o777, 0o600);
    const p = caPaths(ca);
    assert.match(openssl('verify', '-CAfile', p.rootCert, '-untrusted', p.intermediateCert, `${out}.crt`), /: OK/);
    const text = openssl('x509', '-in', `${out}.crt`, '-noout', '-text');
    assert.match(text, /DNS:svc\.internal, DNS:api\.internal, IP Address:10\.1\.2\.3, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /Subject Key Identifier/);
    assert.match(text, /Authority Key Identifier/);
    const leaf = new X509Certificate(readFileSync(`${out}.crt`));
    const hours = (Date.parse(leaf.validTo) - Date.now()) / 3_600_000;
    assert.ok(hours > 1.9 && hours <= 2.01, `valid for ${hours} h`);
    // The key matches the certificate.
    assert.ok(leaf.checkPrivateKey(createPrivateKey(readFileSync(`${out}.key`))));
    // The file holds the chain: leaf then intermediate.
    assert.equal((readFileSync(`${out}.crt`, 'utf8').match(/BEGIN CERTIFICATE/g) ?? []).length, 2);
  });

  it('ca issue: default lifetime 24 h and server usage only; --client alone gives client usage only; --uri adds a URI name', () => {
    const p = caPaths(ca);
    const a = join(dir, 'default');
    assert.equal(cli('issue', '--dir', ca, '--password-file', pw, '--name', 'web.internal', '--out', a).status, 0);
    const leaf = new X509Certificate(readFileSync(`${a}.crt`));
    const hours = (Date.parse(leaf.validTo) - Date.now()) / 3_600_000;
    assert.ok(hours > 23.9 && hours <= 24.01, `valid for ${hours} h`);
    const text = openssl('x509', '-in', `${a}.crt`, '-noout', '-text');
    assert.match(text, /Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    assert.match(openssl('verify', '-purpose', 'sslserver', '-CAfile', p.rootCert, '-untrusted', p.intermediateCert, `${a}.crt`), /OK/);
    const c = join(dir, 'client');
    assert.equal(cli('issue', '--dir', ca, '--password-file', pw, '--name', 'agent-7', '--uri', 'spiffe://corp.example/agent-7', '--client', '--out', c).status, 0);
    const clientText = openssl('x509', '-in', `${c}.crt`, '-noout', '-text');
    assert.match(clientText, /Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
    assert.match(clientText, /DNS:agent-7, URI:spiffe:\/\/corp\.example\/agent-7/);
    assert.match(openssl('verify', '-purpose', 'sslclient', '-CAfile', p.rootCert, '-untrusted', p.intermediateCert, `${c}.crt`), /OK/);
    const bad = spawnSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', p.rootCert, '-untrusted', p.intermediateCert, `${c}.crt`], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0, 'a client-only certificate must not verify for server use');
  });

  it('ca issue: a wrong password or a bad name is refused without a stack trace', () => {
    const wrong = join(dir, 'wrong');
    writeFileSync(wrong, 'not the password\n', { mode: 0o600 });
    const r = cli('issue', '--dir', ca, '--password-file', wrong, '--name', 'x.internal', '--out', join(dir, 'x'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot decrypt the CA key/);
    const n = cli('issue', '--dir', ca, '--password-file', pw, '--name', 'bad name!', '--out', join(dir, 'y'));
    assert.equal(n.status, 1);
    assert.match(n.stderr, /not a DNS name/);
    assert.equal(cli('issue', '--dir', ca).status, 2);
  });

  it('ca trust prints the root certificate', () => {
    const r = cli('trust', '--dir', ca);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, readFileSync(caPaths(ca).rootCert, 'utf8'));
  });

  it('issueCertificate: lifetime from the injected clock; serials are unique', async () => {
    const loaded = await loadCa(ca, 'intermediate secret');
    const now = new Date('2030-01-01T00:00:00Z');
    const a = await issueCertificate(loaded, { name: 'a.internal', lifetimeMs: 6000, now });
    const b = await issueCertificate(loaded, { name: 'a.internal', lifetimeMs: 6000, now });
    assert.notEqual(a.serial, b.serial);
    assert.equal(a.notAfter.getTime(), now.getTime() + 6000);
    assert.ok(a.notBefore.getTime() <= now.getTime() && a.notBefore.getTime() >= now.getTime() - 1000);
    await assert.rejects(loadCa(ca, 'wrong'), /cannot decrypt/);
  });

  it('initCa writes an unencrypted root key only when no root password is given (still 0600)', async () => {
    const d = join(dir, 'plain');
    const p = await initCa({ dir: d, password: 'long enough pw' });
    assert.match(readFileSync(p.rootKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(statSync(p.rootKey).mode & 0o777, 0o600);
    assert.match(readFileSync(p.intermediateKey, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  });
});


describe('CA key encryption parameters (OWASP 2023: PBKDF2-HMAC-SHA256, 600,000 iterations)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-ca-kdf-'));
  const ca = join(dir, 'ca');
  const pw = join(dir, 'pw');
  const rootPw = join(dir, 'root-pw');

  it('ca init writes both keys with PBKDF2-HMAC-SHA256 600,000 iterations, as openssl reads them', async () => {
    writeFileSync(pw, 'intermediate secret\n', { mode: 0o600 });
    writeFileSync(rootPw, 'root secret pass\n', { mode: 0o600 });
    assert.equal(cli('init', '--dir', ca, '--password-file', pw, '--root-password-file', rootPw).status, 0);
    const p = caPaths(ca);
    for (const key of [p.rootKey, p.intermediateKey]) {
      assert.deepEqual(keyEncryption(readFileSync(key, 'utf8')), { kdf: 'pbkdf2', iterations: PBKDF2_ITERATIONS, prf: 'hmacWithSHA256' });
      const parsed = openssl('asn1parse', '-in', key);
      assert.match(parsed, /PBKDF2/);
      assert.match(parsed, /INTEGER\s+:0?927C0\b/, 'iteration count 600000 (0x927C0)');
      assert.match(parsed, /hmacWithSHA256/);
      assert.match(parsed, /aes-256-cbc/);
    }
    openssl('pkey', '-in', p.intermediateKey, '-passin', `file:${pw}`, '-noout');
    await loadCa(ca, 'intermediate secret');
  });

  it('a key written with the old parameters (2,048 iterations) still loads, and ca reencrypt raises it, same password', async () => {
    const p = caPaths(ca);
    // What the previous version wrote: node:crypto's export, OpenSSL's defaults.
    const old = createPrivateKey({ key: readFileSync(p.intermediateKey, 'utf8'), passphrase: 'intermediate secret' }).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'intermediate secret' });
    writeFileSync(p.intermediateKey, old, { mode: 0o600 });
    assert.deepEqual(keyEncryption(old.toString()), { kdf: 'pbkdf2', iterations: 2048, prf: 'hmacWithSHA256' });
    await loadCa(ca, 'intermediate secret');
    const r = cli('reencrypt', '--dir', ca, '--password-file', pw, '--root-password-file', rootPw);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /intermediate\.key \(was PBKDF2 hmacWithSHA256 2048 iterations; now PBKDF2 hmacWithSHA256 600000 iterations/);
    assert.match(r.stdout, /root\.key \(was PBKDF2 hmacWithSHA256 600000/);
    for (const key of [p.rootKey, p.intermediateKey]) {
      assert.equal(statSync(key).mode & 0o777, 0o600);
      assert.equal((keyEncryption(readFileSync(key, 'utf8')) as { iterations: number }).iterations, PBKDF2_ITERATIONS);
    }
    const loaded = await loadCa(ca, 'intermediate secret');
    const leaf = await issueCertificate(loaded, { name: 'after-reencrypt', dnsNames: ['after.test'] });
    assert.ok(new X509Certificate(leaf.certPem).verify(new X509Certificate(loaded.intermediatePem).publicKey));
    // A wrong password changes nothing and says so without the cause.
    writeFileSync(join(dir, 'wrong'), 'not the password\n', { mode: 0o600 });
    const before = readFileSync(p.intermediateKey, 'utf8');
    const bad = cli('reencrypt', '--dir', ca, '--password-file', join(dir, 'wrong'));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /cannot decrypt .*intermediate\.key \(wrong password or damaged key file\)/);
    assert.equal(readFileSync(p.intermediateKey, 'utf8'), before);
  });
});
