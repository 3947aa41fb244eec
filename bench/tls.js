#!/usr/bin/env node
// What TLS costs at the gateway, measured, never asserted (not part of npm test).
//
// One gatehouse process serves the same site on a plain listener and on an HTTPS listener
// with a certificate from the internal CA (ECDSA P-256); bench/upstream.js is behind it.
// Four scenarios, interleaved, each --runs times:
//   http-ka   keep-alive HTTP requests           (baseline)
//   https-ka  keep-alive HTTPS requests          (ratio to http-ka: record-layer cost)
//   http-new  one request per new TCP connection (baseline)
//   https-new one request per new TLS connection (ratio to http-new: handshake cost)
// The report gives medians and the two ratios, each measured in the same run.
//
// Usage: node bench/tls.js [--duration 5] [--runs 3] [--connections 32]
// Needs dist/ (npm run build) and only the root's dependencies (undici).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { createSecureContext } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { duration: { type: 'string', default: '5' }, runs: { type: 'string', default: '3' }, connections: { type: 'string', default: '32' } } });
const DURATION_MS = Number(values.duration) * 1000;
const RUNS = Number(values.runs);
const CONNECTIONS = Number(values.connections);
const HOST = 'bench.test';

const { initCa, loadCa } = await import(join(ROOT, 'dist/pki/ca.js'));

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const children = [];
function start(args, readyPattern) {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${args.join(' ')} did not start:\n${out}`)), 15000);
    const on = (d) => {
      out += d;
      if (readyPattern.test(out)) {
        clearTimeout(t);
        ok(child);
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => fail(new Error(`exited ${code}:\n${out}`)));
  });
}
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function keepAlive(origin, connect) {
  const pool = new Pool(origin, { connections: CONNECTIONS, pipelining: 1, connect });
  let done = 0;
  const end = Date.now() + DURATION_MS;
  async function worker() {
    while (Date.now() < end) {
      const r = await pool.request({ path: '/', method: 'GET', headers: { host: HOST } });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
      done++;
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  await pool.close();
  return done / (DURATION_MS / 1000);
}

async function fresh(port, tls, ca) {
  // One client context for all connections: building one per request (parsing the CA) would
  // measure the load generator. agent: false means no session resumption: full handshakes.
  const secureContext = createSecureContext({ ca });
  let done = 0;
  const end = Date.now() + DURATION_MS;
  const one = () =>
    new Promise((ok, fail) => {
      const opts = { host: '127.0.0.1', port, path: '/', headers: { host: HOST, connection: 'close' }, agent: false };
      const req = tls ? httpsRequest({ ...opts, secureContext, servername: HOST }, onRes) : httpRequest(opts, onRes);
      function onRes(res) {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? ok() : fail(new Error(`status ${res.statusCode}`))));
      }
      req.on('error', fail);
      req.end();
    });
  async function worker() {
    while (Date.now() < end) {
      await one();
      done++;
    }
  }
  // Fewer concurrent dialers: ephemeral ports and TIME_WAIT, not the gateway, would limit many.
  await Promise.all(Array.from({ length: Math.min(8, CONNECTIONS) }, worker));
  return done / (DURATION_MS / 1000);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-tls-'));
try {
  writeFileSync(join(dir, 'ca-password'), 'bench password\n', { mode: 0o600 });
  await initCa({ dir: join(dir, 'ca'), password: 'bench password' });
  const ca = (await loadCa(join(dir, 'ca'), 'bench password')).rootPem;
  const [upPort, httpPort, httpsPort, adminPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  await start(['bench/upstream.js', String(upPort)], /listening|127\.0\.0\.1/i);
  const config = {
    listen: [{ address: `127.0.0.1:${httpPort}` }, { address: `127.0.0.1:${httpsPort}`, tls: { internal_ca: true } }],
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: 'warn' },
    ...(process.getuid?.() === 0 ? { process: { serve_as_root: true } } : {}),
    ca: { dir: join(dir, 'ca'), password_file: join(dir, 'ca-password'), lifetime: '24h' },
    sites: [{ id: 'bench', hosts: [HOST], upstream: { urls: [`http://127.0.0.1:${upPort}`] } }],
  };
  writeFileSync(join(dir, 'gatehouse.json.yaml'), JSON.stringify(config));
  const gw = spawn(process.execPath, ['bin/gatehouse.js', 'run', '--config', join(dir, 'gatehouse.json.yaml')], { cwd: ROOT, stdio: 'ignore' });
  children.push(gw);
  // log.level warn prints nothing on start: wait until the admin listener answers.
  for (let i = 0; ; i++) {
    const ready = await new Promise((ok) => {
      const req = httpRequest({ host: '127.0.0.1', port: adminPort, path: '/readyz' }, (res) => {
        res.resume();
        ok(res.statusCode === 200);
      });
      req.on('error', () => ok(false));
      req.end();
    });
    if (ready) break;
    if (i > 150) throw new Error('gatehouse did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const results = { 'http-ka': [], 'https-ka': [], 'http-new': [], 'https-new': [] };
  const scenarios = {
    'http-ka': () => keepAlive(`http://127.0.0.1:${httpPort}`, undefined),
    'https-ka': () => keepAlive(`https://127.0.0.1:${httpsPort}`, { ca, servername: HOST }),
    'http-new': () => fresh(httpPort, false, ca),
    'https-new': () => fresh(httpsPort, true, ca),
  };
  // Warm-up (JIT, pools, session caches), not reported.
  for (const f of Object.values(scenarios)) await f();
  for (let run = 1; run <= RUNS; run++) {
    for (const [name, f] of Object.entries(scenarios)) {
      const rps = await f();
      results[name].push(rps);
      process.stderr.write(`run ${run} ${name}: ${rps.toFixed(0)} req/s\n`);
    }
  }
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  const lines = [
    `# gatehouse TLS cost (${new Date().toISOString()}, node ${process.version}, ${RUNS} runs × ${DURATION_MS / 1000} s, ${CONNECTIONS} keep-alive connections, 8 dialers for new connections)`,
    '',
    '| scenario | median req/s | runs |',
    '| --- | --- | --- |',
    ...Object.entries(results).map(([k, v]) => `| ${k} | ${m[k].toFixed(0)} | ${v.map((x) => x.toFixed(0)).join(', ')} |`),
    '',
    `https-ka / http-ka = ${(m['https-ka'] / m['http-ka']).toFixed(2)} (keep-alive: record-layer cost)`,
    `https-new / http-new = ${(m['https-new'] / m['http-new']).toFixed(2)} (a full ECDHE-ECDSA handshake per request)`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  cleanup();
  rmSync(dir, { recursive: true, force: true });
}
