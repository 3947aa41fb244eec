/**
 * A TLS client that sends no SNI (a scanner probing an address) gets no certificate: the
 * handshake is refused before any certificate is sent, unless the listener names a
 * `default_sni`. Checked with a Node client and `openssl s_client -noservername`.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig, ConfigError } from '../config/load.js';
import { startGateway, startUpstream, writeConfig, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, handshake, httpsGet, type TestCa } from '../testing/tls.js';
import { stringify } from 'yaml';

/** Runs s_client (async: the gateway answers from this very process) and returns everything it printed. */
function sClient(port: number, extra: string[]): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...extra], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const timer = setTimeout(() => p.kill('SIGKILL'), 8000);
    p.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    p.stdin.end();
  });
}

describe('no SNI, no certificate (unless default_sni)', () => {
  let ca: TestCa;
  let up: Upstream;
  let gw: TestGateway;
  let strict: number;
  let withDefault: number;
  before(async () => {
    ca = await createTestCa();
    up = await startUpstream();
    gw = await startGateway({
      listen: [
        { address: '127.0.0.1:0', tls: { internal_ca: true } },
        { address: '127.0.0.1:0', tls: { internal_ca: true }, default_sni: 'public.test' },
      ],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      sites: [
        { id: 'secret', hosts: ['secret.test'], upstream: { urls: [up.url] } },
        { id: 'public', hosts: ['public.test', '127.0.0.1'], upstream: { urls: [up.url] } },
      ],
    });
    strict = (gw.gw.addresses().public[0] as AddressInfo).port;
    withDefault = (gw.gw.addresses().public[1] as AddressInfo).port;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('a Node client without SNI: the handshake fails and no certificate is seen; with SNI it works; counted as no_server_name', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const h = await handshake(strict, undefined, ca.rootPem, { maxVersion });
      h.socket.destroy();
      assert.equal(h.ok, false, maxVersion);
      assert.equal(h.cert, null, 'no certificate was sent');
    }
    assert.equal((await httpsGet(strict, { ca: ca.rootPem, servername: 'secret.test' })).status, 200);
    const m = await fetch(`${gw.adminUrl}/metrics`).then((r) => r.text());
    assert.match(m, /gatehouse_tls_handshake_failures_total\{reason="no_server_name"\} [2-9]/);
  });

  it('openssl s_client -noservername gets no certificate from a listener without default_sni', async (t) => {
    if (spawnSync('openssl', ['version']).status !== 0) {
      if (process.env.CI) assert.fail('openssl is missing');
      t.skip('openssl not installed');
      return;
    }
    const none = await sClient(strict, ['-noservername']);
    assert.match(none, /alert|handshake failure|no peer certificate available/i, none);
    assert.doesNotMatch(none, /secret\.test|public\.test|BEGIN CERTIFICATE/, 'no name leaks');
    const named = await sClient(strict, ['-servername', 'secret.test']);
    assert.match(named, /secret\.test/, 'with SNI the certificate is served');
  });

  it('a listener with default_sni serves that name to a client without SNI, and only that one', async () => {
    const h = await handshake(withDefault, undefined, ca.rootPem);
    h.socket.destroy();
    assert.equal(h.ok, true, h.error ?? '');
    assert.match(h.cert?.subjectaltname ?? '', /DNS:public\.test/);
    assert.doesNotMatch(h.cert?.subjectaltname ?? '', /secret/);
    if (spawnSync('openssl', ['version']).status === 0) assert.match(await sClient(withDefault, ['-noservername']), /public\.test/);
  });

  it('default_sni without tls, or naming a host no site serves, is a config error with its path', () => {
    const site = { id: 'a', hosts: ['a.test', '*.wild.test'], upstream: { urls: ['http://127.0.0.1:1'] } };
    const problems = (listen: unknown[]) => {
      try {
        parseConfig(stringify({ listen, ca: { dir: ca.caDir, password_file: ca.passwordFile }, sites: [site] }), writeConfig({}));
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        return err.problems.map((p) => `${p.path}: ${p.message}`);
      }
    };
    assert.ok(problems([{ address: '127.0.0.1:0', default_sni: 'a.test' }]).some((p) => p.startsWith('listen[0].default_sni: default_sni is for a listener with tls')));
    assert.ok(problems([{ address: '127.0.0.1:0', tls: { internal_ca: true }, default_sni: 'b.test' }]).some((p) => p.startsWith('listen[0].default_sni: no site serves')));
    assert.deepEqual(problems([{ address: '127.0.0.1:0', tls: { internal_ca: true }, default_sni: 'x.wild.test' }]), []);
    assert.deepEqual(problems([{ address: '127.0.0.1:0', tls: { internal_ca: true }, default_sni: 'A.test' }]), []);
  });
});
