#!/usr/bin/env node
// Revocation propagation benchmark. NOT a test: it measures, it asserts nothing.
//
//   node bench/revocation.js [--count 200] [--redis-port 0]
//
// Two gateway processes (A and B) share one private redis-server (started here, no
// persistence). For each of --count tokens: B serves the token (200, so it sits in B's
// verified-token cache), then the token's jti is revoked through A's admin API
// (POST /v1/revocations) and B is polled back-to-back with the token until it answers
// 401 token_revoked. Propagation = time from sending the revocation to A until B's
// first refusal (so it includes the admin API round trip). Reports p50/p90/p99/max.
// Target p99 < 100 ms; promise < 1 s.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
const { SignJWT } = await import(path.join(ROOT, 'node_modules', 'jose', 'dist', 'webapi', 'index.js'));

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const COUNT = opt('count', 200);
const children = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-revbench-'));
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function freePort() {
  return new Promise((ok) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => ok(p));
    });
  });
}
function waitPort(port, ms = 20_000) {
  const end = Date.now() + ms;
  return new Promise((ok, fail) => {
    const go = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), ok()));
      s.once('error', () => (Date.now() > end ? fail(new Error(`port ${port} not open`)) : setTimeout(go, 50)));
    };
    go();
  });
}
function start(label, cmd, argv) {
  const log = fs.openSync(path.join(tmp, `${label}.log`), 'a');
  const c = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', log, log] });
  children.push(c);
  return c;
}
function req(port, method, p, headers = {}, body) {
  return new Promise((ok, fail) => {
    const r = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => ok({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    r.on('error', fail);
    if (body) r.write(body);
    r.end();
  });
}
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

async function main() {
  const redisPort = await freePort();
  start('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitPort(redisPort);
  const upstreamPort = await freePort();
  start('upstream', process.execPath, [path.join(BENCH_DIR, 'upstream.js'), String(upstreamPort)]);
  await waitPort(upstreamPort);

  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = path.join(tmp, 'k.pub.pem');
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  const adminToken = randomBytes(24).toString('hex');
  const tokenFile = path.join(tmp, 'admin.token');
  fs.writeFileSync(tokenFile, adminToken, { mode: 0o600 });
  const prefix = `gatehouse-revbench:${randomBytes(4).toString('hex')}:`;
  const gw = [];
  for (const name of ['a', 'b']) {
    const port = await freePort();
    const admin = await freePort();
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    const cfg = path.join(dir, 'gatehouse.yaml');
    fs.writeFileSync(
      cfg,
      [
        `listen: [{ address: "127.0.0.1:${port}" }]`,
        `admin: { listen: "127.0.0.1:${admin}", token_file: ${JSON.stringify(tokenFile)} }`,
        'log: { level: warn }',
        ...(process.getuid?.() === 0 ? ['process: { serve_as_root: true }'] : []),
        `state: { store: redis, redis: { url: "redis://127.0.0.1:${redisPort}/0", key_prefix: "${prefix}" } }`,
        `auth: { issuers: [{ id: bench, iss: "https://bench.local", keys: [{ kid: k1, file: ${JSON.stringify(pub)} }] }] }`,
        'identities: { unknown_identity: allow, default_agent_rpm: 1000000000 }',
        'sites:',
        `  - { id: app, hosts: ["127.0.0.1"], upstream: { urls: ["http://127.0.0.1:${upstreamPort}"] }, auth: {} }`,
      ].join('\n') + '\n',
    );
    start(`gatehouse-${name}`, process.execPath, [path.join(ROOT, 'bin', 'gatehouse.js'), 'run', '--config', cfg]);
    gw.push({ port, admin });
  }
  for (const g of gw) {
    await waitPort(g.port);
    await waitPort(g.admin);
  }
  const [A, B] = gw;
  const samples = [];
  const adminRtt = [];
  let polls = 0;
  const now = () => Math.floor(Date.now() / 1000);
  for (let i = 0; i < COUNT; i++) {
    const jti = randomUUID();
    const token = await new SignJWT({ sub: `agent-${i % 10}`, type: 'agent', jti })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer('https://bench.local')
      .setIssuedAt(now())
      .setExpirationTime(now() + 600)
      .sign(privateKey);
    const auth = { authorization: `Bearer ${token}` };
    const first = await req(B.port, 'GET', '/', auth);
    if (first.status !== 200) throw new Error(`B refused a fresh token: ${first.status} ${first.body}`);
    const t0 = performance.now();
    const revoked = req(A.admin, 'POST', '/v1/revocations', { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, JSON.stringify({ jti })).then((r) => {
      adminRtt.push(performance.now() - t0);
      if (r.status !== 201) throw new Error(`revocation failed: ${r.status} ${r.body}`);
    });
    for (;;) {
      polls++;
      const r = await req(B.port, 'GET', '/', auth);
      if (r.status === 401) break;
      if (performance.now() - t0 > 5000) throw new Error('not revoked on B within 5 s');
    }
    samples.push(performance.now() - t0);
    await revoked;
  }
  samples.sort((x, y) => x - y);
  adminRtt.sort((x, y) => x - y);
  const f = (x) => x.toFixed(2);
  const lines = [
    `# revocation propagation A → B (${COUNT} revocations, shared private Redis)`,
    '',
    '```',
    `$ node bench/revocation.js --count ${COUNT}`,
    '```',
    '',
    `- node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, Linux ${os.release()}`,
    `- propagation (revocation sent to A → first 401 on B): p50 ${f(pct(samples, 50))} ms, p90 ${f(pct(samples, 90))} ms, **p99 ${f(pct(samples, 99))} ms**, max ${f(samples.at(-1))} ms (target p99 < 100 ms: ${pct(samples, 99) < 100 ? 'met' : 'NOT met'}; promise < 1 s: ${samples.at(-1) < 1000 ? 'met' : 'NOT met'})`,
    `- admin API round trip on A (store write + answer): p50 ${f(pct(adminRtt, 50))} ms, p99 ${f(pct(adminRtt, 99))} ms`,
    `- ${polls} polls of B in total (${(polls / COUNT).toFixed(1)} per revocation)`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  fs.mkdirSync(path.join(BENCH_DIR, 'results'), { recursive: true });
  fs.writeFileSync(path.join(BENCH_DIR, 'results', `revocation-${new Date().toISOString().replace(/[:.]/g, '-')}.md`), lines.join('\n') + '\n');
}

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  agent.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => (cleanup(), process.exit(130)));
process.on('SIGTERM', () => (cleanup(), process.exit(143)));
main().then(
  () => (cleanup(), process.exit(0)),
  (err) => {
    process.stderr.write(`revocation bench failed: ${err.stack ?? err}\nlogs kept in ${tmp}\n`);
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    process.exit(1);
  },
);
