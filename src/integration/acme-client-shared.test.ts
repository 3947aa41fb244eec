/**
 * Two gatehouse instances sharing PostgreSQL (tls.acme.store: postgres) order one
 * certificate between them, against Pebble. Pebble's DNS sends every validation to
 * instance A (127.0.0.31); whichever instance takes the advisory lock orders, and A answers
 * the http-01 token from the shared table when B is the one ordering.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import postgres from 'postgres';
import { sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { freePort, GATEWAY_HOST, pebbleMissing, startPebble, type Pebble } from '../testing/pebble.js';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';

const OTHER_HOST = '127.0.0.32';

function servedSerial(host: string, port: number, ca: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect({ host, port, servername: 'shared.acme.test', ca });
    s.once('secureConnect', () => {
      resolve(s.getPeerCertificate().serialNumber.toUpperCase());
      s.destroy();
    });
    s.once('error', () => resolve(null));
  });
}

describe('ACME client: several instances sharing PostgreSQL', { skip: pebbleMissing() }, () => {
  let pebble: Pebble | null = null;
  let up: Upstream;
  const gws: TestGateway[] = [];
  const schema = `gh_acme_${randomBytes(5).toString('hex')}`;
  let ports: { aHttp: number; aTls: number; bHttp: number; bTls: number };

  before(async (t) => {
    if (!(await needPostgres(t as never))) return;
    ports = { aHttp: await freePort(GATEWAY_HOST), aTls: await freePort(GATEWAY_HOST), bHttp: await freePort(OTHER_HOST), bTls: await freePort(OTHER_HOST) };
    pebble = await startPebble({ httpPort: ports.aHttp, tlsPort: ports.aTls });
    up = await startUpstream();
  });
  after(async () => {
    for (const g of gws) await g.close();
    await up?.close();
    await pebble?.close();
    if (pebble) {
      const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
      await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
      await sql.end();
    }
  });

  it('one order for two instances; both serve the same certificate', async (t) => {
    if (!pebble) return t.skip('no pebble or PostgreSQL');
    const cfg = (host: string, httpPort: number, tlsPort: number) => ({
      listen: [
        { address: `${host}:${httpPort}` },
        { address: `${host}:${tlsPort}`, tls: { acme: { directory: (pebble as Pebble).directory, ca_root: (pebble as Pebble).caRootFile, store: 'postgres' } } },
      ],
      admin: { listen: '127.0.0.1:0' },
      state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-acme-state-')), postgres: { url: POSTGRES_URL, schema } },
      tls: { check_interval: '300ms', retry_max: '2s' },
      sites: [{ id: 'shared', hosts: ['shared.acme.test'], upstream: { urls: [up.url] } }],
    });
    // B first: it most likely takes the lock, and the CA's validation reaches A.
    gws.push(await startGateway(cfg(OTHER_HOST, ports.bHttp, ports.bTls)));
    gws.push(await startGateway(cfg(GATEWAY_HOST, ports.aHttp, ports.aTls)));
    const [b, a] = gws as [TestGateway, TestGateway];
    const end = Date.now() + 30_000;
    while (Date.now() < end && (a.gw.tls.currentSerial('acme/shared') === null || b.gw.tls.currentSerial('acme/shared') === null)) await sleep(100);
    const serial = b.gw.tls.currentSerial('acme/shared');
    assert.ok(serial, 'B has a certificate');
    assert.equal(a.gw.tls.currentSerial('acme/shared'), serial, 'A serves the same certificate');
    const issued = [...a.logs, ...b.logs].filter((l) => l.event === 'acme_certificate_obtained');
    assert.equal(issued.length, 1, 'exactly one order');
    t.diagnostic(`ordered by instance ${b.logs.includes(issued[0] as Record<string, unknown>) ? 'B (validated through A, token from PostgreSQL)' : 'A'}`);
    const loaded = [...a.logs, ...b.logs].filter((l) => l.event === 'acme_certificate_loaded');
    assert.equal(loaded.length, 1);
    assert.equal(loaded[0]?.source, 'another_instance');
    const root = await pebble.issuingRoot();
    assert.equal(await servedSerial(GATEWAY_HOST, ports.aTls, root), serial);
    assert.equal(await servedSerial(OTHER_HOST, ports.bTls, root), serial);
  });
});
