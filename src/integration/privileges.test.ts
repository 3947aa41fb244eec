/**
 * Privilege drop (docs/deploy.md#privileges), with a real `gatehouse run` process started
 * as root: it binds :80 and :443 (on 127.0.0.30, this test's reserved loopback address),
 * drops to `nobody`, and the kernel's view of the process (/proc/PID/status: real,
 * effective, saved and filesystem ids, supplementary groups) is then that user's; secrets
 * are read and state files created as that user; a reload (SIGHUP) still works.
 * Without root, only CAP_NET_BIND_SERVICE (ambient, as systemd's AmbientCapabilities
 * gives it) is enough to bind :80.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { procIds } from '../server/privileges.js';
import { BIN, startUpstream } from '../testing/harness.js';
import { runGatehouse } from '../testing/run-process.js';
import { createTestCa } from '../testing/tls.js';

const ADDR = '127.0.0.30';
const NOBODY = 65534;

function needRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  const reason = 'the privilege-drop tests must run as root';
  if (process.env.CI) throw new Error(`${reason} (CI runs as root)`);
  console.log(`# skipping: ${reason}`);
  t.skip(reason);
  return false;
}

function get(host: string, port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host, port, path, headers: { host: 'localhost', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** A config directory others can traverse, like /etc/gatehouse. */
function configDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-priv-'));
  chmodSync(dir, 0o755);
  return dir;
}

function chownTree(path: string, uid: number): void {
  chownSync(path, uid, uid);
  if (statSync(path).isDirectory()) for (const f of readdirSync(path)) chownTree(join(path, f), uid);
}

describe('privilege drop', { concurrency: false }, () => {
  it('started as root: binds :80 and :443, drops to nobody (real, effective, saved ids; no groups), reads secrets, owns its state, reloads', async (t) => {
    if (!needRoot(t)) return;
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const dir = configDir();
    const ca = await createTestCa();
    chownTree(ca.dir, NOBODY);
    chmodSync(ca.dir, 0o755);
    writeFileSync(join(dir, 'admin.token'), 'admin-token-for-the-privilege-test\n', { mode: 0o600 });
    chownSync(join(dir, 'admin.token'), NOBODY, NOBODY);
    assert.equal(spawnSync(process.execPath, [BIN, 'audit', 'keys', 'generate', '--hmac', join(dir, 'audit.hmac')]).status, 0);
    chownSync(join(dir, 'audit.hmac'), NOBODY, NOBODY);
    const config = (extraHeader: string) => ({
      listen: [{ address: `${ADDR}:80` }, { address: `${ADDR}:443`, tls: { internal_ca: true } }],
      admin: { listen: `${ADDR}:0`, token_file: 'admin.token' },
      ca: { dir: join(ca.caDir), password_file: ca.passwordFile },
      state: { dir: 'state' },
      audit: { enabled: true, keys: [{ id: 'k1', file: 'audit.hmac' }] },
      process: { user: 'nobody' },
      sites: [{ id: 'app', hosts: ['localhost'], upstream: { urls: [upstream.url] }, headers: { set: { 'x-generation': extraHeader } } }],
    });
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify(config('one')));

    const gh = runGatehouse(file);
    t.after(() => gh.stop());
    const dropped = await gh.waitFor((l) => l.event === 'privileges_dropped');
    assert.equal(dropped.uid, NOBODY);
    const listening = await gh.waitFor((l) => l.event === 'listening');
    assert.deepEqual(listening.listen, [`${ADDR}:80`, `${ADDR}:443`]);
    const adminPort = Number(String(listening.admin).split(':').pop());

    const ids = procIds(gh.child.pid as number);
    assert.ok(ids, '/proc/PID/status readable');
    assert.deepEqual(ids.uid, [NOBODY, NOBODY, NOBODY, NOBODY], 'real, effective, saved, filesystem uid');
    assert.deepEqual(ids.gid, [NOBODY, NOBODY, NOBODY, NOBODY], 'real, effective, saved, filesystem gid');
    assert.deepEqual(ids.groups, [], 'supplementary groups cleared');

    // Served on the low ports it bound as root.
    const plain = await get(ADDR, 80, '/hello');
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['x-generation'], 'one');
    const tls = await new Promise<number>((ok, fail) => {
      const r = httpsRequest({ host: ADDR, port: 443, servername: 'localhost', path: '/tls', ca: ca.rootPem, agent: false, headers: { host: 'localhost' } }, (res) => {
        res.resume();
        res.on('end', () => ok(res.statusCode ?? 0));
      });
      r.on('error', fail);
      r.end();
    });
    assert.equal(tls, 200);

    // The admin token (a secret) was read after the drop, as nobody.
    const admin = await get(ADDR, adminPort, '/v1/tls/certificates', { authorization: 'Bearer admin-token-for-the-privilege-test' });
    assert.equal(admin.status, 200, admin.body);
    assert.equal((await get(ADDR, adminPort, '/v1/tls/certificates', { authorization: 'Bearer wrong' })).status, 401);

    // State files exist and belong to nobody (created after the drop).
    const stateDir = join(dir, 'state');
    assert.equal(statSync(stateDir).uid, NOBODY);
    const files = readdirSync(stateDir);
    assert.ok(files.length > 0, 'the audit trail created its state files');
    for (const f of files) assert.equal(statSync(join(stateDir, f)).uid, NOBODY, `${f} owned by nobody`);

    // Reload as nobody: the config and the secrets are read again.
    writeFileSync(file, stringify(config('two')));
    gh.child.kill('SIGHUP');
    await gh.waitFor((l) => l.event === 'config_reloaded');
    assert.equal((await get(ADDR, 80, '/again')).headers['x-generation'], 'two');
    assert.equal((await get(ADDR, adminPort, '/v1/tls/certificates', { authorization: 'Bearer admin-token-for-the-privilege-test' })).status, 200);

    assert.equal(await gh.stop(), 0);
  });

  it('refuses to serve as root without process.user, and says how to fix it', async (t) => {
    if (!needRoot(t)) return;
    const dir = configDir();
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify({ listen: [{ address: `${ADDR}:0` }], admin: { enabled: false }, sites: [{ id: 'a', hosts: ['localhost'], upstream: { urls: ['http://127.0.0.1:9'] } }] }));
    const gh = runGatehouse(file);
    assert.equal(await gh.exited, 1);
    assert.match(gh.stderr(), /refusing to serve as root: set process.user/);
    assert.match(gh.stderr(), /CAP_NET_BIND_SERVICE/);
    assert.match(gh.stderr(), /serve_as_root/);

    // The explicit opt-in keeps root, with a warning in the log.
    writeFileSync(file, stringify({ listen: [{ address: `${ADDR}:0` }], admin: { enabled: false }, process: { serve_as_root: true }, sites: [{ id: 'a', hosts: ['localhost'], upstream: { urls: ['http://127.0.0.1:9'] } }] }));
    const root = runGatehouse(file);
    t.after(() => root.stop());
    const warn = await root.waitFor((l) => l.event === 'running_as_root');
    assert.equal(warn.level, 'warn');
    assert.equal(procIds(root.child.pid as number)?.uid[1], 0);
    assert.equal(await root.stop(), 0);
  });

  it('a secret nobody cannot read fails the start as root, before anything is bound', async (t) => {
    if (!needRoot(t)) return;
    const dir = configDir();
    writeFileSync(join(dir, 'admin.token'), 'a-token-only-root-can-read-here-0123456789\n', { mode: 0o600 });
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify({ listen: [{ address: `${ADDR}:81` }], admin: { listen: `${ADDR}:0`, token_file: 'admin.token' }, process: { user: 'nobody' }, sites: [{ id: 'a', hosts: ['localhost'], upstream: { urls: ['http://127.0.0.1:9'] } }] }));
    const check = spawnSync(process.execPath, [BIN, 'check', '--config', file], { encoding: 'utf8' });
    assert.equal(check.status, 1);
    assert.match(check.stderr, /admin\.token_file: secret file .* not readable by the gateway's user \(uid 65534/);
    const gh = runGatehouse(file);
    assert.equal(await gh.exited, 1);
    assert.match(gh.stderr(), /admin\.token_file/);
  });

  it('without root, CAP_NET_BIND_SERVICE alone binds :80 (the systemd AmbientCapabilities setup)', async (t) => {
    if (!needRoot(t)) return;
    if (spawnSync('setpriv', ['--version']).status !== 0) {
      if (process.env.CI) throw new Error('setpriv (util-linux) missing');
      t.skip('setpriv missing');
      return;
    }
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const dir = configDir();
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify({ listen: [{ address: `${ADDR}:80` }], admin: { enabled: false }, sites: [{ id: 'a', hosts: ['localhost'], upstream: { urls: [upstream.url] } }] }));
    const wrapper = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--inh-caps=+net_bind_service', '--ambient-caps=+net_bind_service'];
    // Without the capability the bind is refused, with a hint.
    const bare = runGatehouse(file, { wrapper: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] });
    assert.equal(await bare.exited, 1);
    assert.match(bare.stderr(), /EACCES.*CAP_NET_BIND_SERVICE/);
    const gh = runGatehouse(file, { wrapper });
    t.after(() => gh.stop());
    await gh.waitFor((l) => l.event === 'listening');
    assert.equal(procIds(gh.child.pid as number)?.uid[1], NOBODY);
    assert.equal((await get(ADDR, 80, '/')).status, 200);
    assert.equal(await gh.stop(), 0);
  });
});
