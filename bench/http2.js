#!/usr/bin/env node
// HTTP/1.1 vs HTTP/2 over TLS, gatehouse next to Caddy, measured, never asserted (not part of npm test).
//
// One upstream (bench/upstream.js), one gatehouse and one Caddy (`caddy run` with a Caddyfile:
// reverse_proxy to the same upstream), both on TLS with the same certificate (ECDSA P-256 from
// a throwaway internal CA). h2load (Debian's nghttp2-client) drives each scenario; they are
// interleaved round by round, each --runs times, and the report gives medians:
//   gatehouse-h1   h2load --h1 (HTTP/1.1 over TLS, keep-alive, no pipelining)
//   gatehouse-h2   h2load (HTTP/2, --streams concurrent streams per connection)
//   caddy-h1, caddy-h2   the same against Caddy
// CPU per request is the proxy process's user+system CPU time (from /proc/PID/stat) during the
// run divided by the requests it completed; the upstream and the load generator are not counted.
//
// Usage: node bench/http2.js [--requests 50000] [--runs 3] [--connections 16] [--streams 10]
// Needs dist/ (npm run build), /usr/bin/h2load and /usr/bin/caddy.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '50000' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '16' },
    streams: { type: 'string', default: '10' },
  },
});
// A request count, not h2load's -D: with -D, h2load 1.52 can keep running past the duration when the server closes a connection.
const REQUESTS = Number(values.requests);
const RUNS = Number(values.runs);
const CONNECTIONS = Number(values.connections);
const STREAMS = Number(values.streams);
const HOST = 'bench.test';
const CLK_TCK = 100; // getconf CLK_TCK on Linux

const { initCa, loadCa, issueCertificate } = await import(join(ROOT, 'dist/pki/ca.js'));

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
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function startProcess(cmd, args) {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  child.once('exit', (code) => {
    if (code !== null && code !== 0) process.stderr.write(`${cmd} exited ${code}:\n${err}\n`);
  });
  children.push(child);
  return child;
}

async function waitPort(port) {
  for (let i = 0; i < 150; i++) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ")" state field.
  return (Number(parts[11]) + Number(parts[12])) / CLK_TCK;
}

async function h2load(port, h1, pid) {
  // The address is 127.0.0.1 (no SNI: both proxies show their only certificate) and the
  // request names it too (h2load 1.52 adds a second Host line rather than replacing it).
  const args = ['-n', String(REQUESTS), '-c', String(CONNECTIONS), '-m', h1 ? '1' : String(STREAMS)];
  if (h1) args.push('--h1');
  args.push(`https://127.0.0.1:${port}/`);
  const cpu0 = cpuSeconds(pid);
  const { stdout } = await run('h2load', args, { maxBuffer: 1 << 22 });
  const cpu1 = cpuSeconds(pid);
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? NaN);
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  const proto = /Application protocol: (\S+)/.exec(stdout)?.[1] ?? '?';
  const done = Number(m?.[4] ?? 0);
  if (!codes || Number(codes[2]) + Number(codes[3]) + Number(codes[4]) > 0 || Number(m?.[5] ?? 1) > 0) throw new Error(`non-2xx answers or failures:\n${stdout}`);
  return { rps, proto, cpuUsPerReq: done > 0 ? ((cpu1 - cpu0) * 1e6) / done : NaN };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-h2-'));
try {
  await initCa({ dir: join(dir, 'ca'), password: 'bench password' });
  const ca = await loadCa(join(dir, 'ca'), 'bench password');
  const leaf = await issueCertificate(ca, { name: HOST, lifetimeMs: 86_400_000 });
  writeFileSync(join(dir, 'cert.pem'), leaf.chainPem);
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  const [upPort, gwPort, adminPort, caddyPort, caddyHttp] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  startProcess(process.execPath, ['bench/upstream.js', String(upPort)]);
  await waitPort(upPort);

  const config = {
    listen: [{ address: `127.0.0.1:${gwPort}`, tls: { cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem') }, default_sni: HOST }], // h2load sends no SNI to an IP address
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: 'warn' },
    http: { http2: { max_concurrent_streams: Math.max(100, STREAMS) } },
    sites: [{ id: 'bench', hosts: [HOST, '127.0.0.1'], upstream: { urls: [`http://127.0.0.1:${upPort}`] } }],
    // A benchmark box often runs as root; the gateway refuses that unless told.
    ...(process.getuid?.() === 0 ? { process: { serve_as_root: true } } : {}),
  };
  writeFileSync(join(dir, 'gatehouse.yaml'), JSON.stringify(config));
  const gw = startProcess(process.execPath, ['bin/gatehouse.js', 'run', '--config', join(dir, 'gatehouse.yaml')]);
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

  // Caddy as a plain reverse proxy: no access log, no admin API, same certificate.
  writeFileSync(
    join(dir, 'Caddyfile'),
    `{
\tadmin off
\tauto_https off
\thttp_port ${caddyHttp}
\tdefault_sni ${HOST}
}
https://127.0.0.1:${caddyPort} {
\ttls ${join(dir, 'cert.pem')} ${join(dir, 'key.pem')}
\treverse_proxy 127.0.0.1:${upPort}
}
`,
  );
  const caddy = startProcess('/usr/bin/caddy', ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile']);
  await waitPort(caddyPort);

  const scenarios = {
    'gatehouse-h1': () => h2load(gwPort, true, gw.pid),
    'gatehouse-h2': () => h2load(gwPort, false, gw.pid),
    'caddy-h1': () => h2load(caddyPort, true, caddy.pid),
    'caddy-h2': () => h2load(caddyPort, false, caddy.pid),
  };
  const results = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
  // Warm-up round (JIT, pools), not reported.
  for (const f of Object.values(scenarios)) await f();
  for (let r = 1; r <= RUNS; r++) {
    for (const [name, f] of Object.entries(scenarios)) {
      const x = await f();
      results[name].push(x);
      process.stderr.write(`run ${r} ${name} (${x.proto}): ${x.rps.toFixed(0)} req/s, ${x.cpuUsPerReq.toFixed(0)} µs CPU/req\n`);
    }
  }
  const med = (k, f) => median(results[k].map(f));
  const rps = (k) => med(k, (x) => x.rps);
  const cpu = (k) => med(k, (x) => x.cpuUsPerReq);
  const lines = [
    `# HTTP/1.1 vs HTTP/2 over TLS, gatehouse and Caddy ${(await run('/usr/bin/caddy', ['version'])).stdout.trim().split(' ')[0]} (${new Date().toISOString()}, node ${process.version}, h2load ${RUNS} interleaved runs × ${REQUESTS} requests, ${CONNECTIONS} connections, ${STREAMS} streams/connection for h2)`,
    '',
    '| scenario | protocol | median req/s | median proxy CPU µs/req | runs (req/s) |',
    '| --- | --- | --- | --- | --- |',
    ...Object.keys(scenarios).map((k) => `| ${k} | ${results[k][0].proto} | ${rps(k).toFixed(0)} | ${cpu(k).toFixed(0)} | ${results[k].map((x) => x.rps.toFixed(0)).join(', ')} |`),
    '',
    `gatehouse h2 / h1 = ${(rps('gatehouse-h2') / rps('gatehouse-h1')).toFixed(2)} (req/s); CPU/req ${(cpu('gatehouse-h2') / cpu('gatehouse-h1')).toFixed(2)}`,
    `caddy h2 / h1 = ${(rps('caddy-h2') / rps('caddy-h1')).toFixed(2)} (req/s); CPU/req ${(cpu('caddy-h2') / cpu('caddy-h1')).toFixed(2)}`,
    `gatehouse / caddy: h1 ${(rps('gatehouse-h1') / rps('caddy-h1')).toFixed(2)}, h2 ${(rps('gatehouse-h2') / rps('caddy-h2')).toFixed(2)} (req/s); CPU/req h1 ${(cpu('gatehouse-h1') / cpu('caddy-h1')).toFixed(2)}, h2 ${(cpu('gatehouse-h2') / cpu('caddy-h2')).toFixed(2)}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  cleanup();
  rmSync(dir, { recursive: true, force: true });
}
