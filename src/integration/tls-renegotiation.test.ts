/**
 * Client-initiated TLS 1.2 renegotiation is refused on every TLS listener (a public one
 * and the admin listener), as nginx and Go refuse it: with a Node client calling
 * renegotiate(), and with `openssl s_client -tls1_2` sending `R`. The connection is closed
 * and counted; a fresh connection still works.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, handshake, httpsGet, requestOn, type TestCa } from '../testing/tls.js';

/** Resolves with the renegotiate() callback's error (null: the server renegotiated) or 'closed'. */
function renegotiate(port: number, servername: string, ca: string, path = '/x'): Promise<{ before: number; outcome: string }> {
  return handshake(port, servername, ca, { maxVersion: 'TLSv1.2' }).then(async (h) => {
    assert.ok(h.ok, h.error ?? '');
    assert.equal(h.socket.getProtocol(), 'TLSv1.2');
    const first = await requestOn(h.socket, servername, path);
    return new Promise((resolve) => {
      let settled = false;
      const done = (outcome: string) => {
        if (settled) return;
        settled = true;
        h.socket.destroy();
        resolve({ before: first.status, outcome });
      };
      h.socket.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
      h.socket.on('close', () => done('closed'));
      const started = h.socket.renegotiate({ rejectUnauthorized: true }, (err) => done(err ? (err as NodeJS.ErrnoException).code ?? err.message : 'renegotiated'));
      if (!started) done('not started');
    });
  });
}

describe('TLS renegotiation is refused', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let port: number;
  let adminPort: number;
  before(async () => {
    ca = await createTestCa();
    up = await startUpstream();
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0', tls: { internal_ca: true } },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      sites: [{ id: 'app', hosts: ['app.test'], upstream: { urls: [up.url] } }],
    });
    port = (gw.gw.addresses().public[0] as AddressInfo).port;
    adminPort = (gw.gw.addresses().admin as AddressInfo).port;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('a Node client calling renegotiate() on a public listener is refused and the connection closed; a new connection works', async () => {
    const r = await renegotiate(port, 'app.test', ca.rootPem);
    assert.equal(r.before, 200);
    assert.notEqual(r.outcome, 'renegotiated', r.outcome);
    assert.equal((await httpsGet(port, { ca: ca.rootPem, servername: 'app.test', path: '/y' })).status, 200);
    const m = await httpsGet(adminPort, { ca: ca.rootPem, servername: 'localhost', path: '/metrics' });
    assert.match(m.body, /gatehouse_tls_handshake_failures_total\{reason="renegotiation"\} [1-9]/);
    assert.ok(gw.logs.some((l) => l.event === 'tls_renegotiation_refused'));
  });

  it('the admin listener refuses it too', async () => {
    const r = await renegotiate(adminPort, 'localhost', ca.rootPem, '/healthz');
    assert.equal(r.before, 200);
    assert.notEqual(r.outcome, 'renegotiated', r.outcome);
  });

  it('openssl s_client -tls1_2 sending R: the renegotiation fails and nothing more is served on that connection', async (t) => {
    if (spawnSync('openssl', ['version']).status !== 0) {
      if (process.env.CI) assert.fail('openssl is missing');
      t.skip('openssl not installed');
      return;
    }
    // `R` on a line of its own asks s_client to renegotiate; the GET after it must get no answer.
    const out = await new Promise<string>((resolve) => {
      // Neither -quiet nor -ign_eof: with them s_client ignores its `R` command.
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'app.test', '-tls1_2'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (d: Buffer) => (text += d.toString('latin1')));
      p.stderr.on('data', (d: Buffer) => (text += d.toString('latin1')));
      const timer = setTimeout(() => p.kill('SIGKILL'), 8000);
      p.on('close', () => {
        clearTimeout(timer);
        resolve(text);
      });
      p.stdin.write('GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n');
      setTimeout(() => p.stdin.write('R\n'), 500);
      // Not ended: EOF on stdin would make s_client close before an answer could come.
      setTimeout(() => p.stdin.write('GET /second HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n'), 1500);
      setTimeout(() => p.kill('SIGTERM'), 3500);
    });
    assert.match(out, /HTTP\/1\.1 200/, out);
    assert.equal(out.match(/HTTP\/1\.1 /g)?.length, 1, `only the request before the renegotiation is answered:\n${out}`);
    assert.equal(up.seen.filter((s) => s.url === '/second').length, 0);
  });
});
