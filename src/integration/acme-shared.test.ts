/**
 * Two gatehouse instances behind one name, on one PostgreSQL + Redis (acme_server.store:
 * postgres), serve one ACME client: every connection goes to the other instance (a
 * round-robin TCP balancer), so a nonce issued by one is used on the other, an order made
 * on one is validated and finalized on the other, and a replay through the other instance
 * is refused.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import postgres from 'postgres';
import { accountKey, makeCsr, startHttp01Responder, TestAcmeClient } from '../testing/acme.js';
import { baseConfig, startGateway, startUpstream } from '../testing/harness.js';
import { needPostgres, needRedis, POSTGRES_URL, REDIS_URL } from '../testing/services.js';
import { createTestCa } from '../testing/tls.js';

/** Round robin per connection over `ports`; counts connections per backend. */
async function balancer(ports: number[], port: number): Promise<{ server: Server; port: number; counts: number[]; close(): Promise<void> }> {
  const counts = ports.map(() => 0);
  let next = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const i = next++ % ports.length;
    counts[i] = (counts[i] ?? 0) + 1;
    const up = connect(ports[i] as number, '127.0.0.1');
    client.pipe(up).pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  const close = () => {
    const done = new Promise<void>((ok) => server.close(() => ok()));
    for (const s of sockets) s.destroy();
    return done;
  };
  return { server, port, counts, close };
}

it('two instances on one PostgreSQL + Redis serve one client through one name', async (t) => {
  if (!(await needPostgres(t)) || !(await needRedis(t))) return;
  const ca = await createTestCa();
  const upstream = await startUpstream();
  const responder = await startHttp01Responder('127.0.0.26');
  const schema = `gh_acme_${randomBytes(5).toString('hex')}`;
  // The balancer's port is the name both instances answer for; reserve it first.
  const lb0 = createServer();
  await new Promise<void>((ok) => lb0.listen(0, '127.0.0.1', ok));
  const lbPort = (lb0.address() as AddressInfo).port;
  await new Promise<void>((ok) => lb0.close(() => ok()));
  const config = () =>
    baseConfig(upstream.url, {}, {
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-acme-')), postgres: { url: POSTGRES_URL, schema }, redis: { url: REDIS_URL, key_prefix: `gh-acme-${schema}:` } },
      acme_server: {
        listen: '127.0.0.1:0',
        names: ['127.0.0.1'],
        external_url: `https://127.0.0.1:${lbPort}`,
        store: 'postgres',
        identifiers: { dns_names: ['shared.acme.test'] },
        challenges: { http_port: responder.port, resolve: { 'shared.acme.test': '127.0.0.26' }, static_only: true },
      },
    });
  const a = await startGateway(config());
  const b = await startGateway(config());
  const ports = [a, b].map((g) => (g.gw.acme as NonNullable<typeof g.gw.acme>).address().port);
  const lb = await balancer(ports, lbPort);
  try {
    const c = await new TestAcmeClient(`https://127.0.0.1:${lbPort}/acme/directory`, ca.rootPem, await accountKey()).init();
    assert.equal((await c.newAccount()).status, 201);
    const r = await c.newOrder([{ type: 'dns', value: 'shared.acme.test' }]);
    assert.equal(r.status, 201, r.body);
    const az = (r.json().authorizations as string[])[0] as string;
    const ch = ((await c.post(az, '')).json().challenges as Array<Record<string, string>>).find((x) => x.type === 'http-01') as Record<string, string>;
    responder.tokens.set(ch.token as string, `${ch.token}.${await c.thumbprint()}`);
    await c.post(ch.url as string, {});
    assert.equal((await c.poll(az)).status, 'valid');
    assert.equal((await c.poll(r.headers.location as string)).status, 'ready');
    const fin = await c.post(r.json().finalize as string, { csr: (await makeCsr(['shared.acme.test'])).b64 });
    assert.equal(fin.json().status, 'valid', fin.body);
    const pem = (await c.post(fin.json().certificate as string, '')).body;
    assert.equal(new X509Certificate(pem).subjectAltName, 'DNS:shared.acme.test');
    assert.equal(responder.hits.length, 1, 'validated once, by one instance');

    // A nonce is single-use across instances: use it on one, replay it (next connection: the other).
    const nonce = await c.nonce();
    assert.equal((await c.post(c.kid as string, '', { nonce })).status, 200);
    const replay = await c.post(c.kid as string, '', { nonce });
    assert.equal(replay.json().type, 'urn:ietf:params:acme:error:badNonce');
    assert.ok((lb.counts[0] ?? 0) > 5 && (lb.counts[1] ?? 0) > 5, `both instances served (${lb.counts.join('/')})`);
  } finally {
    await lb.close();
    await a.close();
    await b.close();
    await responder.close();
    await upstream.close();
    const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
    await sql.end();
  }
});

