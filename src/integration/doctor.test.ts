/**
 * `gatehouse doctor`: a good deployment (internal CA with the root key offline, HTTPS,
 * secrets 0600, audit with a checkpoint key whose chain verifies, token auth with a Cedar
 * policy, a login limit, loopback admin) has no FAIL, running and stopped; then each
 * check FAILs when its fault is injected, one at a time.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { before, describe, it, after } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { loadForDoctor } from '../cli/doctor.js';
import { loadConfig } from '../config/load.js';
import { runDoctor, type CheckResult, type DoctorOptions } from '../doctor/checks.js';
import { Gateway } from '../server/gateway.js';
import { BIN, startUpstream, waitReady, type Upstream } from '../testing/harness.js';
import { freePort } from '../testing/redis-server.js';
import { createTestCa, httpsGet, type TestCa } from '../testing/tls.js';
import { keyDir, makeKey } from '../testing/tokens.js';
import pino from 'pino';

let ca: TestCa;
let upstream: Upstream;
let base: string;

/** The good deployment's config (every path absolute, so variants can live in other directories). */
function goodConfig(): Record<string, unknown> {
  return {
    listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
    admin: { listen: '127.0.0.1:0', token_file: join(base, 'admin.token') },
    ca: { dir: join(base, 'ca'), password_file: join(base, 'ca-password') },
    state: { dir: join(base, 'state') },
    audit: { enabled: true, keys: [{ id: 'k1', file: join(base, 'audit.hmac') }], checkpoint_key_file: join(base, 'checkpoint.key'), checkpoint_records: 1 },
    auth: { issuers: [{ id: 'atom', keys: [{ kid: 'k', file: join(base, 'issuer.pub.pem') }] }] },
    sites: [
      {
        id: 'app',
        hosts: ['localhost', '127.0.0.1'],
        upstream: { urls: [upstream.url] },
        rate_limits: [{ id: 'general', limit: 100, window: '1m' }, { id: 'login', limit: 10, window: '1m', paths: ['/login*'] }],
        auth: { paths: ['/api*'] },
        policy: { files: [join(base, 'policy.cedar')] },
      },
    ],
  };
}

function write(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-cfg-'));
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

async function doctor(config: Record<string, unknown>, opts: DoctorOptions = {}): Promise<CheckResult[]> {
  const { loaded, problems } = loadForDoctor(write(config));
  assert.ok(loaded, `config unusable: ${JSON.stringify(problems)}`);
  return runDoctor(loaded.config, loaded.dir, { env: {}, ...opts, problems });
}

function status(results: CheckResult[], id: string): CheckResult {
  const r = results.find((x) => x.id === id);
  assert.ok(r, `no check ${id}`);
  return r;
}

function assertFails(results: CheckResult[], id: string, message: RegExp): void {
  const r = status(results, id);
  assert.equal(r.status, 'FAIL', `${id}: ${JSON.stringify(r)}`);
  assert.match(r.message, message);
  assert.ok(r.fix && r.fix.length > 10, `${id} says how to fix it`);
}

before(async () => {
  ca = await createTestCa();
  upstream = await startUpstream();
  base = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-'));
  cpSync(ca.caDir, join(base, 'ca'), { recursive: true });
  // The root key goes offline: the gateway needs the root certificate and the intermediate only.
  renameSync(join(base, 'ca', 'root.key'), join(base, 'root.key.offline'));
  copyFileSync(ca.passwordFile, join(base, 'ca-password'));
  writeFileSync(join(base, 'admin.token'), 'doctor-test-admin-token-1234567890\n', { mode: 0o600 });
  writeFileSync(join(base, 'audit.hmac'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  writeFileSync(join(base, 'checkpoint.key'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  const key = makeKey(keyDir(), 'k', 'ES256');
  copyFileSync(key.file, join(base, 'issuer.pub.pem'));
  writeFileSync(join(base, 'policy.cedar'), 'permit(principal, action, resource);\n');
});
after(() => upstream.close());

describe('gatehouse doctor', { concurrency: false }, () => {
  it('a good deployment, stopped and running: no FAIL; the audit chain it wrote verifies', async () => {
    const stopped = await doctor(goodConfig());
    assert.match(status(stopped, 'audit').message, /no audit store yet/);
    assert.deepEqual(stopped.filter((r) => r.status === 'FAIL'), [], JSON.stringify(stopped, null, 1));
    for (const id of ['config', 'secret_files', 'secrets_inline_env', 'admin_listener', 'tls', 'certificates', 'ca_key', 'login_rate_limit', 'security_headers', 'trusted_proxies', 'store_tls', 'audit', 'revocation_store', 'policy']) {
      assert.equal(status(stopped, id).status, 'PASS', `${id}: ${JSON.stringify(status(stopped, id))}`);
    }
    assert.equal(status(stopped, 'running').status, 'SKIP');

    const file = write(goodConfig());
    const gw = await Gateway.start({ loaded: loadConfig(file), logger: pino({ level: 'silent' }) });
    try {
      const a = gw.addresses();
      const admin = `http://127.0.0.1:${(a.admin as AddressInfo).port}`;
      await waitReady((a.admin as AddressInfo).port);
      // Some traffic for the audit trail (checkpoint_records: 1 signs a checkpoint per record).
      const port = (a.public[0] as AddressInfo).port;
      for (let i = 0; i < 3; i++) assert.equal((await httpsGet(port, { ca: ca.rootPem, servername: 'localhost', path: `/page-${i}` })).status, 200);
      const running = await doctor(goodConfig(), { admin });
      assert.equal(status(running, 'running').status, 'PASS', JSON.stringify(status(running, 'running')));
      assert.equal(status(running, 'revocation_store').status, 'PASS', JSON.stringify(status(running, 'revocation_store')));
      assert.match(status(running, 'revocation_store').message, /running gateway confirms/);
      assert.match(status(running, 'certificates').message, /certificate\(s\) valid/);
      assert.deepEqual(running.filter((r) => r.status === 'FAIL'), []);
    } finally {
      await gw.close(0);
    }
    const after = await doctor(goodConfig());
    assert.equal(status(after, 'audit').status, 'PASS');
  });

  it('the CLI prints one line per check and exits 0 without FAIL, 1 with one; --json', () => {
    const file = write(goodConfig());
    const good = spawnSync(process.execPath, [BIN, 'doctor', '--config', file], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(good.status, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /^PASS {2}audit {14}enabled with a checkpoint key/m);
    assert.match(good.stdout, /0 fail, \d+ warn, \d+ pass, \d+ skipped/);
    const bad = spawnSync(process.execPath, [BIN, 'doctor', '--config', write({ ...goodConfig(), trusted_proxies: ['0.0.0.0/0'] }), '--json'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(bad.status, 1);
    const out = JSON.parse(bad.stdout) as { ok: boolean; checks: CheckResult[] };
    assert.equal(out.ok, false);
    assert.equal(out.checks.find((c) => c.id === 'trusted_proxies')?.status, 'FAIL');
    assert.equal(spawnSync(process.execPath, [BIN, 'doctor']).status, 2);
  });

  it('privileges: serve_as_root, or a running process with root ids, fails; a process running as nobody passes', async () => {
    assertFails(await doctor({ ...goodConfig(), process: { serve_as_root: true } }), 'privileges', /keeps serving as root/);
    assertFails(await doctor(goodConfig(), { pid: process.pid }), 'privileges', process.getuid?.() === 0 ? /runs with root ids/ : /./);
    if (process.getuid?.() === 0) {
      const child = spawn('sleep', ['30'], { uid: 65534, gid: 65534, stdio: 'ignore' });
      try {
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(status(await doctor(goodConfig(), { pid: child.pid as number }), 'privileges').status, 'PASS');
      } finally {
        child.kill();
      }
    }
  });

  it('secret_files: a group/world-readable secret fails (and so does config)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-loose-'));
    writeFileSync(join(dir, 'admin.token'), 'doctor-test-admin-token-1234567890\n', { mode: 0o644 });
    chmodSync(join(dir, 'admin.token'), 0o644);
    const r = await doctor({ ...goodConfig(), admin: { listen: '127.0.0.1:0', token_file: join(dir, 'admin.token') } });
    assertFails(r, 'secret_files', /admin\.token_file: .*mode 0644/);
    assertFails(r, 'config', /admin\.token_file/);
  });

  it('secrets_inline_env: a secret in the environment fails (the value is never printed)', async () => {
    const r = await doctor(goodConfig(), { env: { GATEHOUSE_ADMIN_TOKEN: 'hunter2-secret-value', DATABASE_URL: 'postgres://u:pw-in-url@db/x' } });
    assertFails(r, 'secrets_inline_env', /GATEHOUSE_ADMIN_TOKEN looks like a secret.*DATABASE_URL is a URL with a password/);
    assert.doesNotMatch(JSON.stringify(r), /hunter2|pw-in-url/);
  });

  it('admin_listener: a bearer token over plain HTTP on a non-loopback address fails', async () => {
    assertFails(await doctor({ ...goodConfig(), admin: { listen: '0.0.0.0:0', token_file: join(base, 'admin.token') } }), 'admin_listener', /plain HTTP and accepts a bearer token/);
  });

  it('tls: something accepting TLS 1.1 on an HTTPS listen address fails', async () => {
    const port = await freePort();
    const cert = await ca.issue({ name: 'localhost' });
    const rogue = createTlsServer({ cert: cert.chainPem, key: cert.keyPem, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }, (s) => s.end());
    await new Promise<void>((ok) => rogue.listen(port, '127.0.0.1', ok));
    try {
      assertFails(await doctor({ ...goodConfig(), listen: [{ address: `127.0.0.1:${port}`, tls: { internal_ca: true } }] }), 'tls', /TLS 1\.1 or older accepted on 127\.0\.0\.1:/);
    } finally {
      rogue.close();
    }
  });

  it('certificates: an expired certificate file fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-cert-'));
    const old = await ca.issue({ name: 'localhost', now: new Date(Date.now() - 3 * 86_400_000), lifetimeMs: 86_400_000 });
    writeFileSync(join(dir, 'c.pem'), old.chainPem);
    writeFileSync(join(dir, 'k.pem'), old.keyPem, { mode: 0o600 });
    assertFails(await doctor({ ...goodConfig(), listen: [{ address: '127.0.0.1:0', tls: { cert_file: join(dir, 'c.pem'), key_file: join(dir, 'k.pem') } }] }), 'certificates', /listen\[0\]\.tls\.cert_file expired/);
  });

  it('ca_key: the unencrypted root key on the gateway host fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-ca-'));
    cpSync(join(base, 'ca'), join(dir, 'ca'), { recursive: true });
    copyFileSync(join(base, 'root.key.offline'), join(dir, 'ca', 'root.key'));
    assertFails(await doctor({ ...goodConfig(), ca: { dir: join(dir, 'ca'), password_file: join(base, 'ca-password') } }), 'ca_key', /root key .* unencrypted/);
  });

  it('login_rate_limit: no enforced rule on a login path fails', async () => {
    const c = goodConfig();
    const site = (c.sites as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
    assertFails(await doctor({ ...c, sites: [{ ...site, rate_limits: [{ id: 'general', limit: 100, window: '1m' }] }] }), 'login_rate_limit', /no enforced rate-limit rule covers a login path/);
    assertFails(await doctor({ ...c, sites: [{ ...site, rate_limits: [{ id: 'login', limit: 10, window: '1m', paths: ['/login*'], shadow: true }] }] }), 'login_rate_limit', /shadow mode only/);
  });

  it('security_headers: removing HSTS or weakening a header fails', async () => {
    const c = goodConfig();
    const site = (c.sites as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
    assertFails(await doctor({ ...c, sites: [{ ...site, headers: { remove: ['Strict-Transport-Security'] } }] }), 'security_headers', /app: Strict-Transport-Security is removed/);
    assertFails(await doctor({ ...c, headers: { set: { 'X-Frame-Options': 'ALLOWALL' } } }), 'security_headers', /X-Frame-Options is "ALLOWALL"/);
  });

  it('trusted_proxies: trusting every peer fails', async () => {
    assertFails(await doctor({ ...goodConfig(), trusted_proxies: ['::/0'] }), 'trusted_proxies', /trusts every peer/);
  });

  it('store_tls: a remote PostgreSQL without TLS fails (nothing connects to it)', async () => {
    assertFails(await doctor({ ...goodConfig(), state: { dir: join(base, 'state'), postgres: { url: 'postgres://gh@db.example:5432/gh' } }, identities: { store: 'postgres' } }), 'store_tls', /db\.example is not on loopback and the connection is not encrypted/);
  });

  it('audit: disabled, no checkpoint key, or a modified record fails', async () => {
    assertFails(await doctor({ ...goodConfig(), audit: { enabled: false } }), 'audit', /audit\.enabled is false/);
    const c = goodConfig();
    assertFails(await doctor({ ...c, audit: { ...(c.audit as object), checkpoint_key_file: undefined } }), 'audit', /no audit\.checkpoint_key_file/);
    // Tamper with the trail the first test wrote (in a copy of the state directory).
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-state-'));
    cpSync(join(base, 'state'), join(dir, 'state'), { recursive: true });
    const db = new Database(join(dir, 'state', 'audit.sqlite'));
    for (const t of db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as Array<{ name: string }>) db.exec(`DROP TRIGGER "${t.name}"`);
    assert.equal(db.prepare(`UPDATE audit_records SET data = replace(data, '"instance":"', '"instance":"x') WHERE id = (SELECT min(id) FROM audit_records)`).run().changes, 1);
    db.close();
    assertFails(await doctor({ ...c, state: { dir: join(dir, 'state') } }), 'audit', /chain verification failed/);
  });

  it('audit: the store is opened read-only — a deployment never started gets no store file from doctor; a wiped one fails', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-fresh-'));
    const r = status(await doctor({ ...goodConfig(), state: { dir: fresh } }), 'audit');
    assert.equal(r.status, 'PASS', JSON.stringify(r));
    assert.match(r.message, /no audit store yet/);
    // A writable open would have created the SQLite file (and the gateway, started later
    // as another user, could not have opened it).
    assert.equal(existsSync(join(fresh, 'audit.sqlite')), false);
    // The stream the state directory names has no store: a wiped store, not a new deployment.
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-doctor-state-'));
    cpSync(join(base, 'state'), join(dir, 'state'), { recursive: true });
    for (const f of readdirSync(join(dir, 'state'))) if (f.startsWith('audit.sqlite')) rmSync(join(dir, 'state', f));
    assertFails(await doctor({ ...goodConfig(), state: { dir: join(dir, 'state') } }), 'audit', /audit store \(SQLite in state\.dir\) is missing, but stream gw-[0-9a-f]+ was started/);
    assert.equal(existsSync(join(dir, 'state', 'audit.sqlite')), false);
  });

  it('revocation_store: an unreachable Redis fails', async () => {
    const port = await freePort();
    assertFails(await doctor({ ...goodConfig(), state: { dir: join(base, 'state'), store: 'redis', redis: { url: `redis://127.0.0.1:${port}/0`, connect_timeout: '500ms' } } }), 'revocation_store', /unreachable/);
  });

  it('policy: an authenticated site without a policy fails', async () => {
    const c = goodConfig();
    const site = { ...((c.sites as Array<Record<string, unknown>>)[0] as Record<string, unknown>) };
    delete site.policy;
    assertFails(await doctor({ ...c, sites: [site] }), 'policy', /token authentication but no authorization policy: app/);
  });

  it('running: a gateway that answers /readyz 503 fails, with its reason', async () => {
    const fake = createHttpServer((req, res) => {
      if (req.url === '/readyz') {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"status":"not_ready","reason":"revocation set not current"}');
      } else res.end('gatehouse_revocation_current 0\n');
    });
    await new Promise<void>((ok) => fake.listen(0, '127.0.0.1', ok));
    try {
      const r = await doctor(goodConfig(), { admin: `http://127.0.0.1:${(fake.address() as AddressInfo).port}` });
      assertFails(r, 'running', /503 revocation set not current/);
      assertFails(r, 'revocation_store', /not current/);
    } finally {
      fake.close();
    }
  });
});
