/**
 * gatehouse as an ACME client against Pebble (docs/acme-client.md). Pebble really
 * validates: http-01 fetches the token from gatehouse's plain-HTTP listener, tls-alpn-01
 * handshakes with its TLS listener, both on 127.0.0.31 (Pebble's DNS answers every name
 * with it). The renewal clock is injected: "time passes" moves it past the renewal time and
 * runs one renewal pass; everything else (orders, validation, swaps) is real.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { request, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { freePort, GATEWAY_HOST, pebbleMissing, startPebble, type Pebble } from '../testing/pebble.js';
import { requestOn } from '../testing/tls.js';

function tlsHandshake(port: number, servername: string, ca: string, alpn?: string[]): Promise<{ ok: boolean; cert: PeerCertificate | null; error: string | null; socket: TLSSocket }> {
  return new Promise((resolve) => {
    const socket = connect({ host: GATEWAY_HOST, port, servername, ca, ...(alpn ? { ALPNProtocols: alpn } : {}) });
    let done = false;
    const finish = (ok: boolean, error: string | null) => {
      if (done) return;
      done = true;
      const cert = socket.getPeerCertificate();
      resolve({ ok, cert: cert && Object.keys(cert).length > 0 ? cert : null, error, socket });
    };
    socket.once('secureConnect', () => finish(true, null));
    socket.once('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    socket.once('close', () => finish(false, 'closed'));
  });
}

async function waitFor<T>(what: string, fn: () => T | null | undefined | Promise<T | null | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function metric(gw: TestGateway, line: RegExp): Promise<number> {
  const r = await request(`${gw.adminUrl}/metrics`);
  const l = r.body.split('\n').find((x) => line.test(x));
  return l ? Number(l.split(' ').at(-1)) : 0;
}

const events = (gw: TestGateway, name: string) => gw.logs.filter((l) => l.event === name);

describe('ACME client against Pebble: http-01', { skip: pebbleMissing() }, () => {
  let pebble: Pebble | null = null;
  let up: Upstream;
  let gw: TestGateway;
  let config: Record<string, unknown>;
  let tlsPort: number;
  let offset = 0;
  const now = () => Date.now() + offset;

  before(async () => {
    const httpPort = await freePort(GATEWAY_HOST);
    tlsPort = await freePort(GATEWAY_HOST);
    pebble = await startPebble({ httpPort, tlsPort });
    up = await startUpstream();
    config = {
      listen: [
        { address: `${GATEWAY_HOST}:${httpPort}`, redirect_https: true },
        { address: `${GATEWAY_HOST}:${tlsPort}`, tls: { acme: { directory: pebble.directory, ca_root: pebble.caRootFile, email: 'ops@acme.test', challenge: 'http-01' } } },
      ],
      admin: { listen: '127.0.0.1:0' },
      state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-acme-state-')) },
      tls: { check_interval: '500ms', retry_max: '2s' },
      http: { keep_alive_timeout: '60s' },
      sites: [{ id: 'app', hosts: ['app.acme.test', 'www.acme.test'], upstream: { urls: [up.url] } }],
    };
    gw = await startGateway(config, { now });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
    await pebble?.close();
  });

  /** Time passes until the certificate is due, then one renewal pass runs; the clock goes back. */
  async function renewalDue(): Promise<void> {
    const due = Date.parse((gw.gw.tls.certificates().find((c) => c.name === 'acme/app') as { renew_at: string }).renew_at);
    offset = due - Date.now() + 1000;
    await gw.gw.tls.acme?.check();
  }

  it('obtains the first certificate by http-01 (answered before the redirect) and serves it by SNI for every site name', async (t) => {
    if (!pebble) return t.skip('no pebble');
    const issued = await waitFor('the first certificate', () => events(gw, 'acme_certificate_obtained')[0]);
    assert.deepEqual([...(issued.names as string[])].sort(), ['app.acme.test', 'www.acme.test']);
    const root = await pebble.issuingRoot();
    for (const name of ['app.acme.test', 'www.acme.test']) {
      const h = await tlsHandshake(tlsPort, name, root);
      assert.ok(h.ok, `${name}: ${h.error}`);
      assert.equal(h.cert?.serialNumber.toUpperCase(), issued.serial);
      const r = await requestOn(h.socket, name, '/hello');
      assert.equal(r.status, 200);
      h.socket.destroy();
    }
    const unknown = await tlsHandshake(tlsPort, 'other.acme.test', root);
    assert.equal(unknown.ok, false, 'a name no site serves gets no certificate');
    // Stored under state.dir: directory 0700, key 0600.
    const acmeDir = join((config.state as { dir: string }).dir, 'acme');
    const ns = readdirSync(acmeDir)[0] as string;
    assert.equal(statSync(acmeDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(acmeDir, ns)).mode & 0o777, 0o700);
    assert.equal(statSync(join(acmeDir, ns, 'app.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(acmeDir, ns, 'account.key')).mode & 0o777, 0o600);
    assert.equal(await metric(gw, /^gatehouse_acme_orders_total\{name="acme\/app",result="issued"\}/), 1);
    const lifetime = Date.parse(issued.not_after as string) - Date.now();
    assert.ok(lifetime > 0);
  });

  it('renews at two thirds of the lifetime while a client holds a keep-alive connection: it keeps working, new handshakes see the new certificate', async (t) => {
    if (!pebble) return t.skip('no pebble');
    const root = await pebble.issuingRoot();
    const held = await tlsHandshake(tlsPort, 'app.acme.test', root);
    assert.ok(held.ok, held.error ?? '');
    const before = held.cert?.serialNumber.toUpperCase();
    assert.equal((await requestOn(held.socket, 'app.acme.test', '/1')).status, 200);
    const c = gw.gw.tls.certificates().find((x) => x.name === 'acme/app');
    assert.ok(c);
    const notAfter = Date.parse(c.not_after);
    const renewAt = Date.parse(c.renew_at as string);
    // Pebble offers no ARI: the renewal time is two thirds into the lifetime.
    const notBefore = Date.parse(held.cert?.valid_from ?? '');
    assert.ok(Math.abs(renewAt - (notBefore + ((notAfter - notBefore) * 2) / 3)) < 1000, `renew_at ${c.renew_at}`);
    await renewalDue();
    const renewed = await waitFor('the renewal', () => events(gw, 'acme_certificate_renewed')[0]);
    offset = 0;
    assert.notEqual(renewed.serial, before);
    // The held connection still works with the certificate it was made with.
    assert.equal((await requestOn(held.socket, 'app.acme.test', '/2')).status, 200);
    assert.equal(held.socket.getPeerCertificate().serialNumber.toUpperCase(), before);
    held.socket.destroy();
    const fresh = await tlsHandshake(tlsPort, 'app.acme.test', root);
    assert.ok(fresh.ok);
    assert.equal(fresh.cert?.serialNumber.toUpperCase(), renewed.serial);
    fresh.socket.destroy();
    assert.equal(await metric(gw, /^gatehouse_tls_certificate_renewals_total\{name="acme\/app"\}/), 1);
  });

  it('CA down at renewal time: the old certificate keeps serving, the failure is counted and logged (warn), then it recovers (info)', async (t) => {
    if (!pebble) return t.skip('no pebble');
    const root = await pebble.issuingRoot();
    const serving = gw.gw.tls.currentSerial('acme/app');
    await pebble.stop();
    await renewalDue();
    const failed = await waitFor('a failed order', () => events(gw, 'acme_order_failed')[0]);
    assert.equal(failed.level, 'warn');
    assert.equal(failed.name, 'acme/app');
    assert.ok(await metric(gw, /^gatehouse_acme_orders_total\{name="acme\/app",result="failed"\}/) >= 1);
    assert.ok(await metric(gw, /^gatehouse_tls_certificate_renewal_failures_total\{name="acme\/app"\}/) >= 1);
    const h = await tlsHandshake(tlsPort, 'app.acme.test', root);
    assert.ok(h.ok, 'the old certificate keeps serving');
    assert.equal(h.cert?.serialNumber.toUpperCase(), serving);
    h.socket.destroy();
    // The CA comes back (Pebble with a new root); past the backoff the renewal succeeds.
    await pebble.start();
    offset += 10_000;
    const recovered = await waitFor('recovery', async () => {
      await gw.gw.tls.acme?.check();
      return events(gw, 'acme_order_recovered')[0];
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(gw.logs.filter((l) => String(l.event).startsWith('acme')).slice(-4))}`);
    });
    offset = 0;
    assert.equal(recovered.level, 'info');
    assert.notEqual(gw.gw.tls.currentSerial('acme/app'), serving);
    const newRoot = await pebble.issuingRoot();
    const n = await tlsHandshake(tlsPort, 'app.acme.test', newRoot);
    assert.ok(n.ok, n.error ?? '');
    n.socket.destroy();
  });

  it('a restart reuses the stored certificate: no new order', async (t) => {
    if (!pebble) return t.skip('no pebble');
    const serial = gw.gw.tls.currentSerial('acme/app');
    await gw.close();
    gw = await startGateway(config);
    const loaded = await waitFor('the stored certificate', () => events(gw, 'acme_certificate_loaded')[0]);
    assert.equal(loaded.source, 'store');
    assert.equal(gw.gw.tls.currentSerial('acme/app'), serial);
    await gw.gw.tls.acme?.check();
    assert.equal(events(gw, 'acme_certificate_obtained').length, 0);
    assert.equal(await metric(gw, /^gatehouse_acme_orders_total/), 0);
    const h = await tlsHandshake(tlsPort, 'app.acme.test', await pebble.issuingRoot());
    assert.ok(h.ok, h.error ?? '');
    assert.equal(h.cert?.serialNumber.toUpperCase(), serial);
    h.socket.destroy();
  });
});

describe('ACME client against Pebble: tls-alpn-01', { skip: pebbleMissing() }, () => {
  let pebble: Pebble | null = null;
  let up: Upstream;
  let gw: TestGateway;
  let tlsPort: number;

  before(async () => {
    tlsPort = await freePort(GATEWAY_HOST);
    // Pebble's http-01 port points nowhere: only the TLS listener can prove control.
    pebble = await startPebble({ httpPort: await freePort(GATEWAY_HOST), tlsPort });
    up = await startUpstream();
    gw = await startGateway({
      listen: [{ address: `${GATEWAY_HOST}:${tlsPort}`, tls: { acme: { directory: pebble.directory, ca_root: pebble.caRootFile, challenge: 'tls-alpn-01', key_type: 'ecdsa-p384' } } }],
      admin: { listen: '127.0.0.1:0' },
      state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-acme-state-')) },
      tls: { check_interval: '500ms', retry_max: '2s' },
      sites: [{ id: 'alpn', hosts: ['alpn.acme.test'], upstream: { urls: [up.url] } }],
    });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
    await pebble?.close();
  });

  it('obtains a certificate by tls-alpn-01 on the HTTPS listener itself, then serves it to normal clients', async (t) => {
    if (!pebble) return t.skip('no pebble');
    const issued = await waitFor('the certificate', () => events(gw, 'acme_certificate_obtained')[0]);
    assert.deepEqual(issued.names, ['alpn.acme.test']);
    const root = await pebble.issuingRoot();
    const h = await tlsHandshake(tlsPort, 'alpn.acme.test', root, ['http/1.1']);
    assert.ok(h.ok, h.error ?? '');
    assert.equal(h.cert?.serialNumber.toUpperCase(), issued.serial);
    assert.equal((h.cert as PeerCertificate & { asn1Curve?: string }).asn1Curve, 'secp384r1', 'key_type ecdsa-p384');
    assert.equal((await requestOn(h.socket, 'alpn.acme.test', '/')).status, 200);
    h.socket.destroy();
    // No challenge pending: a hello offering only acme-tls/1 reaches the listener, which refuses the protocol (never the challenge certificate).
    const a = await tlsHandshake(tlsPort, 'alpn.acme.test', root, ['acme-tls/1']);
    assert.equal(a.ok, false);
    assert.equal(a.error, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
  });
});
