#!/usr/bin/env node
// What the ACME server costs, measured, never asserted (not part of npm test).
//
// One in-process gateway with acme_server (SQLite store, the default) and the internal CA.
// 1. Issuance rate: orders finalized per second by one client whose authorization is
//    already valid (newOrder is `ready` at once, then finalize with a CSR, then download),
//    against a baseline measured in the same run: issueCertificate() called directly
//    (what `gatehouse ca issue` does, key generation included). Interleaved, --runs times.
// 2. Handshake cost: new TLS handshakes per second against a server presenting an
//    ACME-issued certificate (P-256 CSR key, and RSA-2048 as certbot's default) vs one
//    from `ca issue` (P-256), interleaved, --runs times; medians and ratios.
//
// Usage: node bench/acme.js [--duration 3] [--runs 5] [--connections 8]
// Needs dist/ (npm run build); uses only the root's dependencies.
import 'reflect-metadata';
import { webcrypto, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTlsServer, connect } from 'node:tls';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as x509 from '@peculiar/x509';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { duration: { type: 'string', default: '3' }, runs: { type: 'string', default: '5' }, connections: { type: 'string', default: '8' } } });
const DURATION_MS = Number(values.duration) * 1000;
const RUNS = Number(values.runs);
const CONNECTIONS = Number(values.connections);

const { createTestCa } = await import(join(ROOT, 'dist/testing/tls.js'));
const { baseConfig, startGateway, startUpstream } = await import(join(ROOT, 'dist/testing/harness.js'));
const { accountKey, startHttp01Responder, TestAcmeClient } = await import(join(ROOT, 'dist/testing/acme.js'));
const { issueCertificate } = await import(join(ROOT, 'dist/pki/ca.js'));
x509.cryptoProvider.set(webcrypto);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const NAME = 'bench.acme.test';

async function csrWithKey(kind) {
  const algorithm = kind === 'rsa' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } : { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${NAME}`, keys, signingAlgorithm: kind === 'rsa' ? algorithm : { name: 'ECDSA', hash: 'SHA-256' }, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: NAME }])] });
  const keyPem = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' });
  return { b64: Buffer.from(csr.rawData).toString('base64url'), keyPem };
}

const ca = await createTestCa();
const upstream = await startUpstream();
const responder = await startHttp01Responder('127.0.0.27');
const state = mkdtempSync(join(tmpdir(), 'gatehouse-acme-bench-'));
const gw = await startGateway(baseConfig(upstream.url, {}, {
  log: { level: 'warn' },
  ca: { dir: ca.caDir, password_file: ca.passwordFile },
  state: { dir: state },
  acme_server: { listen: '127.0.0.1:0', names: ['127.0.0.1'], identifiers: { dns_names: [NAME] }, limits: { pending_orders: 100000 }, challenges: { http_port: responder.port, resolve: { [NAME]: '127.0.0.27' }, static_only: true } },
}));
const client = new TestAcmeClient(gw.gw.acme.directoryUrl, ca.rootPem, await accountKey());
// Keep-alive, as certbot and lego do: the figure is the server's, not the client's TLS handshakes.
client.agent = new Agent({ keepAlive: true, ca: ca.rootPem });
await client.init();
await client.newAccount();
// One validation; every later order reuses the valid authorization.
{
  const r = await client.newOrder([{ type: 'dns', value: NAME }]);
  const az = r.json().authorizations[0];
  const ch = (await client.post(az, '')).json().challenges.find((c) => c.type === 'http-01');
  responder.tokens.set(ch.token, `${ch.token}.${await client.thumbprint()}`);
  await client.post(ch.url, {});
  if ((await client.poll(az)).status !== 'valid') throw new Error('validation failed');
}
const p256 = await csrWithKey('p256');
const rsa = await csrWithKey('rsa');

async function acmeIssue(csr) {
  const o = await client.newOrder([{ type: 'dns', value: NAME }]);
  if (o.json().status !== 'ready') throw new Error(`order not ready: ${o.body}`);
  const fin = await client.post(o.json().finalize, { csr: csr.b64 });
  if (fin.json().status !== 'valid') throw new Error(`finalize: ${fin.body}`);
  return (await client.post(fin.json().certificate, '')).body;
}

async function rate(fn) {
  const end = Date.now() + DURATION_MS;
  let n = 0;
  const t0 = performance.now();
  while (Date.now() < end) {
    await fn();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

const issue = { acme: [], direct: [] };
for (let r = 0; r < RUNS; r++) {
  issue.acme.push(await rate(() => acmeIssue(p256)));
  issue.direct.push(await rate(() => issueCertificate(ca.ca, { name: NAME, lifetimeMs: 86_400_000 })));
}

// Handshakes: one TLS server per certificate; new connection per handshake, CONNECTIONS in parallel.
const acmeP256 = { cert: await acmeIssue(p256), key: p256.keyPem };
const acmeRsa = { cert: await acmeIssue(rsa), key: rsa.keyPem };
const direct = await issueCertificate(ca.ca, { name: NAME, lifetimeMs: 86_400_000 });
const certs = { 'ca-issue-p256': { cert: direct.chainPem, key: direct.keyPem }, 'acme-p256': acmeP256, 'acme-rsa2048': acmeRsa };
const servers = {};
for (const [k, c] of Object.entries(certs)) {
  const s = createTlsServer({ cert: c.cert, key: c.key, minVersion: 'TLSv1.3' }, (sock) => sock.end());
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  servers[k] = s;
}
function handshakes(port) {
  const end = Date.now() + DURATION_MS;
  let n = 0;
  const t0 = performance.now();
  const worker = () =>
    new Promise((done) => {
      const once = () => {
        if (Date.now() >= end) return done();
        const sock = connect({ host: '127.0.0.1', port, servername: NAME, ca: ca.rootPem, minVersion: 'TLSv1.3' }, () => {
          n++;
          sock.destroy();
          once();
        });
        sock.on('error', () => once());
      };
      once();
    });
  return Promise.all(Array.from({ length: CONNECTIONS }, worker)).then(() => n / ((performance.now() - t0) / 1000));
}
const hs = Object.fromEntries(Object.keys(certs).map((k) => [k, []]));
for (let r = 0; r < RUNS; r++) for (const k of Object.keys(certs)) hs[k].push(await handshakes(servers[k].address().port));

const f = (x) => x.toFixed(1);
console.log(`ACME server benchmark (node ${process.version}, ${RUNS} interleaved runs of ${DURATION_MS / 1000}s, medians)`);
console.log(`issuance: ACME orders finalized/s (valid authorization reused, P-256 CSR, incl. download) ${f(median(issue.acme))}  runs ${issue.acme.map(f).join(' ')}`);
console.log(`          issueCertificate()/s (ca issue path, key generation included)                ${f(median(issue.direct))}  runs ${issue.direct.map(f).join(' ')}`);
console.log(`          ratio ACME / direct ${(median(issue.acme) / median(issue.direct)).toFixed(2)}`);
for (const k of Object.keys(certs)) console.log(`handshakes/s TLS 1.3, ${CONNECTIONS} parallel, ${k.padEnd(14)} ${f(median(hs[k]))}  runs ${hs[k].map(f).join(' ')}  ratio to ca-issue-p256 ${(median(hs[k]) / median(hs['ca-issue-p256'])).toFixed(2)}`);

for (const s of Object.values(servers)) s.close();
await gw.close();
await responder.close();
await upstream.close();
client.agent.destroy();
rmSync(state, { recursive: true, force: true });
process.exit(0);
