#!/usr/bin/env node
// gatehouse benchmark runner. NOT part of the test suite: it measures speed, it asserts nothing.
//
//   node bench/run.js [--duration 10] [--connections 64] [--runs 3] [--scenarios a,b,c,d]
//
// Scenarios (all in one run, interleaved a,b,c,d,a,b,c,d,... so machine noise hits all alike):
//   a  direct: load generator -> upstream
//   b  gatehouse, proxying only (no ip_filter, no rate_limits; security headers are always on)
//   c  gatehouse, full edge pipeline (allowlist 127.0.0.0/8 + ::1, per-IP rate limit that never
//      triggers, default security headers)
//   d  fastify 5 + @fastify/http-proxy + @fastify/rate-limit + @fastify/helmet doing (c)'s work
//   e  gatehouse identity pipeline: (c) plus an RS256 (2048-bit) bearer token verified on every
//      request, the revocation check and a per-identity limit that never triggers
//   f  (d) plus @fastify/jwt verifying the same token on every request (fastify-edge.js, JWT mode)
//   g  HAProxy 2.6 (installed with apt if missing and possible): allowlist, jwt_verify RS256 + exp
//      check, jti map lookup, per-identity stick-table limit, security headers (one thread, pinned
//      like the others)
//   h  gatehouse full edge + audit trail: (c) plus audit (async, SQLite, signed checkpoints)
//   i  the Node.js floor (node-floor.js): node:http + an undici Pool forwarding to the upstream,
//      no security work at all — what the platform costs before gatehouse does anything
//   Default a,b,c,d. Identity comparison: --scenarios a,c,e,f,g. Audit cost: --scenarios c,h.
//
// Two phases:
//   1. closed loop (wrk -c64: 64 requests always in flight): throughput. Its latency is queueing.
//   2. fixed rate (every selected scenario but b; --no-fixed-rate to skip): the same 64
//      connections, but requests are offered at a fixed rate (--rate, default 50 % of the lowest
//      phase-1 throughput among the selected gateways of this phase, e.g. the lower of (c) and (d)
//      in a default run), so no gateway is saturated: latency the gateway adds at that load.
//      Identity scenarios send their Authorization header in both phases.
//
// Pinning: the gateway under test (b to i) on core 0; the upstream and the load generator on core 1.
// Prints a Markdown report to stdout and writes it to bench/results/edge-<timestamp>.md.
// Progress goes to stderr. See bench/README.md.
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const BENCH_DEPS = ['fastify', '@fastify/http-proxy', '@fastify/rate-limit', '@fastify/helmet', '@fastify/jwt', 'autocannon'];

const SCENARIOS = {
  a: { key: 'a', label: 'a) direct (upstream)', kind: 'upstream' },
  b: { key: 'b', label: 'b) gatehouse proxy only', kind: 'gatehouse', edge: false },
  c: { key: 'c', label: 'c) gatehouse full edge', kind: 'gatehouse', edge: true },
  d: { key: 'd', label: 'd) fastify edge', kind: 'fastify' },
  e: { key: 'e', label: 'e) gatehouse identity', kind: 'gatehouse', edge: true, identity: true },
  f: { key: 'f', label: 'f) fastify identity (@fastify/jwt)', kind: 'fastify', identity: true },
  g: { key: 'g', label: 'g) haproxy 2.6 jwt_verify', kind: 'haproxy', identity: true },
  h: { key: 'h', label: 'h) gatehouse full edge + audit', kind: 'gatehouse', edge: true, audit: true },
  // (j) is (h) run from another build (--baseline DIR, e.g. a git worktree of an older commit,
  // built): the previous audit format measured in the same run, interleaved with (h).
  j: { key: 'j', label: 'j) (h) from the --baseline build', kind: 'gatehouse', edge: true, audit: true, baseline: true },
  i: { key: 'i', label: 'i) node:http + undici floor', kind: 'floor' },
};
const ALL_SCENARIOS = Object.keys(SCENARIOS).join(',');

// The fixed-rate phase: every scenario but (b) (the proxy-only path has no latency question of its own).
const FIXED_RATE_SCENARIOS = ['a', 'c', 'd', 'e', 'f', 'g', 'h', 'j'];
// Their gateways; the automatic rate is 50 % of the slowest of those selected.
const FIXED_RATE_GATEWAYS = FIXED_RATE_SCENARIOS.filter((k) => k !== 'a');

const HELP = `usage: node bench/run.js [options]

  --duration N       seconds per measured run (default 10)
  --connections N    concurrent keep-alive connections (default 64)
  --runs N           measured runs per scenario, interleaved (default 3)
  --scenarios LIST   comma-separated subset of a,b,c,d,e,f,g,h,i,j (default a,b,c,d;
                     identity comparison: a,c,e,f,g,i; audit cost: c,h — and j with --baseline)
  --baseline DIR     another gatehouse checkout, built (dist/), that scenario (j) runs: the
                     same config as (h) on the older code, interleaved with it
  --warmup N         warm-up seconds per server before measuring (default 2; 0 = none)
  --threads N        wrk threads (default 1)
  --timeout N        wrk per-request timeout in seconds (default 5)
  --log-level L      gatehouse log.level for b, c, e and h (default warn)
  --tool T           wrk | autocannon | auto (default auto: wrk, installed with apt if missing)
  --no-fixed-rate    skip the fixed-rate latency phase
  --rate N           offered req/s in the fixed-rate phase (default 0 = automatic: 50 % of the
                     lowest median closed-loop throughput among the selected c,d,e,f,g,h, rounded
                     down to 100)
  --rate-tool T      fixed-rate load generator: wrk | autocannon | auto (default auto: wrk with a
                     paced Lua script; autocannon -R if wrk cannot pace — see bench/README.md)
  --no-pin           do not pin processes to cores with taskset
  --no-install       never install anything (fail instead)
  --no-build         never (re)build gatehouse (dist/) before running b, c, e, h
  --keep-tmp         keep the temp dir (configs and server logs) after the run
  --help             this text
`;

// ---------------------------------------------------------------------------------------------
// arguments

function parseArgs(argv) {
  const opts = {
    duration: 10,
    connections: 64,
    runs: 3,
    scenarios: 'a,b,c,d',
    warmup: 2,
    threads: 1,
    timeout: 5,
    'log-level': 'warn',
    tool: 'auto',
    'fixed-rate': true,
    rate: 0,
    'rate-tool': 'auto',
    pin: true,
    install: true,
    build: true,
    'keep-tmp': false,
    baseline: '',
    help: false,
  };
  const numeric = new Set(['duration', 'connections', 'runs', 'warmup', 'threads', 'timeout', 'rate']);
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)} (see --help)`);
    a = a.slice(2);
    let val;
    const eq = a.indexOf('=');
    if (eq >= 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (a === 'help') opts.help = true;
    else if (a === 'no-pin') opts.pin = false;
    else if (a === 'no-install') opts.install = false;
    else if (a === 'no-build') opts.build = false;
    else if (a === 'no-fixed-rate') opts['fixed-rate'] = false;
    else if (a === 'keep-tmp') opts['keep-tmp'] = true;
    else if (a in opts && typeof opts[a] !== 'boolean') {
      if (val === undefined) {
        val = argv[++i];
        if (val === undefined) throw new Error(`--${a} needs a value`);
      }
      if (numeric.has(a)) {
        const n = Number(val);
        if (!Number.isInteger(n) || n < 0) throw new Error(`--${a} must be a non-negative integer, got ${JSON.stringify(val)}`);
        opts[a] = n;
      } else opts[a] = val;
    } else throw new Error(`unknown option --${a} (see --help)`);
  }
  for (const k of ['duration', 'connections', 'runs', 'threads', 'timeout']) {
    if (opts[k] < 1) throw new Error(`--${k} must be at least 1`);
  }
  if (opts.threads > opts.connections) throw new Error('--threads must not exceed --connections');
  const list = opts.scenarios
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const s of list) if (!SCENARIOS[s]) throw new Error(`unknown scenario ${JSON.stringify(s)} (use ${ALL_SCENARIOS})`);
  opts.list = [...new Set(list)];
  if (opts.list.length === 0) throw new Error('no scenarios selected');
  if (opts.list.includes('j') && !(opts.baseline && fs.existsSync(path.join(opts.baseline, 'dist', 'cli', 'main.js')))) {
    throw new Error('scenario j needs --baseline DIR: a gatehouse checkout with a built dist/ (git worktree add DIR <commit> && (cd DIR && npm ci))');
  }
  if (!['wrk', 'autocannon', 'auto'].includes(opts.tool)) throw new Error('--tool must be wrk, autocannon or auto');
  if (!['wrk', 'autocannon', 'auto'].includes(opts['rate-tool'])) throw new Error('--rate-tool must be wrk, autocannon or auto');
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(opts['log-level'])) {
    throw new Error(`bad --log-level ${JSON.stringify(opts['log-level'])}`);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function progress(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}
function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

function tail(file, lines = 20) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function shellQuote(s) {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// child processes: every one is tracked and killed at the end, on SIGINT/SIGTERM and on errors

const children = new Set();
let PIN = true;
let SETPRIV = null; // setpriv with --pdeathsig: children die with the runner even if it is SIGKILLed

function wrapCommand(cpu, cmd, args) {
  let full = [cmd, ...args];
  if (PIN && cpu !== null && cpu !== undefined) full = ['taskset', '-c', String(cpu), ...full];
  if (SETPRIV) full = [SETPRIV, '--pdeathsig', 'KILL', '--', ...full];
  return full;
}

function startChild(label, cpu, cmd, args, { env = {}, logFile }) {
  const full = wrapCommand(cpu, cmd, args);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(full[0], full.slice(1), {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  const rec = { label, child, logFile, cmdline: full.map(shellQuote).join(' '), exited: null };
  child.on('exit', (code, signal) => {
    rec.exited = { code, signal };
    children.delete(rec);
  });
  child.on('error', (err) => {
    rec.exited = { code: null, signal: null, error: err.message };
    children.delete(rec);
  });
  children.add(rec);
  return rec;
}

function killAllSync(signal = 'SIGKILL') {
  for (const rec of children) {
    try {
      process.kill(rec.child.pid, signal);
    } catch {
      // already gone
    }
  }
}

async function stopAll() {
  if (children.size === 0) return;
  for (const rec of children) {
    try {
      process.kill(rec.child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 3000;
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  killAllSync('SIGKILL');
  const deadline2 = Date.now() + 2000;
  while (children.size > 0 && Date.now() < deadline2) await sleep(50);
}

let tmpDir = null;
let keepTmp = false;
let cleanedUp = false;

async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  await stopAll();
  if (tmpDir && !keepTmp) fs.rmSync(tmpDir, { recursive: true, force: true });
  else if (tmpDir) progress(`temp dir kept: ${tmpDir}`);
}

process.on('exit', () => killAllSync('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    progress(`${sig}: stopping every child process`);
    keepTmp = true;
    cleanup().finally(() => process.exit(130));
  });
}
process.on('uncaughtException', (err) => {
  process.stderr.write(`[bench] error: ${err && err.stack ? err.stack : err}\n`);
  keepTmp = true;
  cleanup().finally(() => process.exit(1));
});
process.on('unhandledRejection', (err) => {
  process.stderr.write(`[bench] error: ${err && err.stack ? err.stack : err}\n`);
  keepTmp = true;
  cleanup().finally(() => process.exit(1));
});

// ---------------------------------------------------------------------------------------------
// installs

function runSync(cmd, args, { timeoutMs = 600_000, env = {}, cwd = ROOT } = {}) {
  progress(`$ ${[cmd, ...args].map(shellQuote).join(' ')}`);
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 2, 2], // keep stdout for the report
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  if (r.error) progress(`  failed: ${r.error.message}`);
  return r.status === 0;
}

function benchDepsPresent() {
  return BENCH_DEPS.every((d) => fs.existsSync(path.join(BENCH_DIR, 'node_modules', d, 'package.json')));
}

function ensureBenchDeps(opts) {
  if (fs.existsSync(path.join(BENCH_DIR, 'node_modules')) && benchDepsPresent()) return;
  if (!opts.install) throw new Error('bench/node_modules is missing or incomplete and --no-install was given');
  progress('bench/node_modules missing or incomplete: installing the bench dependencies');
  const npm = which('npm') || 'npm';
  if (!runSync(npm, ['install', '--prefix', path.relative(ROOT, BENCH_DIR) || '.', '--no-audit', '--no-fund'], { timeoutMs: 600_000 })) {
    throw new Error('npm install --prefix bench failed');
  }
  if (!benchDepsPresent()) throw new Error('npm install --prefix bench did not install every bench dependency');
}

/** apt-get install -y pkg (root or passwordless sudo; apt-get update and a retry on failure). */
function aptInstall(pkg) {
  if (!which('apt-get')) return false;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const sudo = isRoot ? null : which('sudo');
  if (!isRoot && !sudo) return false;
  const apt = (args) =>
    isRoot
      ? runSync('apt-get', args, { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 600_000 })
      : runSync(sudo, ['-n', 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args], { timeoutMs: 600_000 });
  progress(`${pkg} not on PATH: installing it with apt-get`);
  if (apt(['install', '-y', pkg])) return true;
  // A fresh machine often has no package lists yet.
  apt(['update']);
  return apt(['install', '-y', pkg]);
}

function ensureLoadTool(opts) {
  if (opts.tool !== 'autocannon') {
    let wrk = which('wrk');
    if (!wrk && opts.install) {
      aptInstall('wrk');
      wrk = which('wrk') || (fs.existsSync('/usr/bin/wrk') ? '/usr/bin/wrk' : null);
    }
    if (wrk) {
      const v = spawnSync(wrk, ['-v'], { encoding: 'utf8', timeout: 5000 });
      const version = `${v.stdout || ''}${v.stderr || ''}`.split('\n')[0].replace(/\s*Copyright.*$/, '').trim() || 'wrk';
      return { tool: 'wrk', bin: wrk, version };
    }
    if (opts.tool === 'wrk') throw new Error('wrk is not available and could not be installed (try --tool autocannon)');
    progress('wrk unavailable: falling back to autocannon (from bench/node_modules)');
  }
  const ac = path.join(BENCH_DIR, 'node_modules', 'autocannon', 'autocannon.js');
  if (!fs.existsSync(ac)) throw new Error('autocannon is not installed in bench/node_modules');
  const pkg = JSON.parse(fs.readFileSync(path.join(BENCH_DIR, 'node_modules', 'autocannon', 'package.json'), 'utf8'));
  return { tool: 'autocannon', bin: ac, version: `autocannon ${pkg.version}` };
}

/**
 * HAProxy for scenario (g): on PATH, else apt-get install haproxy (Debian 12 ships 2.6) unless
 * --no-install. jwt_verify needs HAProxy >= 2.5. Returns { bin, version } or { error }.
 */
function ensureHaproxy(opts) {
  const find = () => which('haproxy') || ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy'].find((p) => fs.existsSync(p)) || null;
  let bin = find();
  if (!bin && opts.install) {
    aptInstall('haproxy');
    bin = find();
  }
  if (!bin) return { error: `haproxy not installed${opts.install ? ' and apt-get could not install it' : ' (--no-install)'} (apt-get install haproxy)` };
  const v = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
  const line = `${v.stdout || ''}${v.stderr || ''}`.split('\n')[0].trim();
  const m = /version (\d+)\.(\d+)/i.exec(line);
  const version = line.replace(/\s+-\s+https?:.*$/, '') || 'haproxy';
  if (m && (Number(m[1]) < 2 || (Number(m[1]) === 2 && Number(m[2]) < 5))) return { error: `${version}: jwt_verify needs HAProxy 2.5 or later` };
  return { bin, version };
}

function newestMtime(dir, ext) {
  let newest = 0;
  const walk = (d) => {
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(ext)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

/** Makes sure dist/ holds a build of the current src/. Returns a note for the report. */
function ensureGatehouseBuilt(opts) {
  const mainJs = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(path.join(ROOT, 'node_modules'))) {
    if (!opts.install) throw new Error('the project root has no node_modules (run npm ci) and --no-install was given');
    progress('project root has no node_modules: npm ci (this also builds dist/)');
    const npm = which('npm') || 'npm';
    runSync(npm, fs.existsSync(path.join(ROOT, 'package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
  }
  const stale = !fs.existsSync(mainJs) || newestMtime(path.join(ROOT, 'src'), '.ts') > newestMtime(path.join(ROOT, 'dist'), '.js');
  if (!stale) return 'dist/ up to date with src/';
  if (!opts.build) return fs.existsSync(mainJs) ? 'dist/ older than src/ (not rebuilt: --no-build)' : 'dist/ missing (--no-build)';
  progress('dist/ missing or older than src/: building gatehouse (tsc -p tsconfig.json)');
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const ok = fs.existsSync(tsc)
    ? runSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { timeoutMs: 300_000 })
    : runSync(which('npx') || 'npx', ['tsc', '-p', 'tsconfig.json'], { timeoutMs: 300_000 });
  if (!ok) return fs.existsSync(mainJs) ? 'rebuilt dist/ but tsc reported errors' : 'tsc failed and dist/ is missing';
  return 'rebuilt dist/ from src/';
}

// ---------------------------------------------------------------------------------------------
// networking

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function tryConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const done = (ok) => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

async function waitForPort(rec, port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (rec.exited) {
      throw new Error(`${rec.label} exited before accepting connections (${JSON.stringify(rec.exited)}); log tail:\n${tail(rec.logFile)}`);
    }
    if (await tryConnect(port)) return;
    await sleep(100);
  }
  throw new Error(`${rec.label} did not accept connections on 127.0.0.1:${port} within ${timeoutMs / 1000}s; log tail:\n${tail(rec.logFile)}`);
}

function httpGet(url, timeoutMs = 5000, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): per-core busy share and a process' CPU time

function readCoreTimes() {
  try {
    const out = {};
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2].trim().split(/\s+/).map(Number);
      const idle = (f[3] || 0) + (f[4] || 0);
      const total = f.slice(0, 8).reduce((s, x) => s + (x || 0), 0);
      out[m[1]] = { idle, total };
    }
    return out;
  } catch {
    return null;
  }
}

function coreBusy(before, after, core) {
  if (!before || !after || !before[core] || !after[core]) return NaN;
  const dt = after[core].total - before[core].total;
  const di = after[core].idle - before[core].idle;
  return dt > 0 ? (100 * (dt - di)) / dt : NaN;
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
  const n = Number((r.stdout || '').trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/**
 * CPU seconds (user + system) used so far by a process, or NaN; with `mainThread`, by its
 * main thread only (the task whose id is the pid: the event loop, not the worker threads).
 */
function procCpuSeconds(pid, mainThread = false) {
  try {
    const s = fs.readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm) ": state is f[0]; utime is field 14 overall -> f[11], stime f[12]
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process in MB (VmRSS), or NaN. */
function procRssMb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// load generation

const TIME_UNITS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
const SIZE_UNITS = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function parseWrkTime(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s);
  return m ? Number(m[1]) * TIME_UNITS[m[2]] : NaN;
}

/** Parses wrk --latency output. Latencies in milliseconds. */
function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  const pct = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+(?:us|ms|s|m|h))\\s*$`, 'm').exec(text);
    return m ? parseWrkTime(m[1]) : NaN;
  };
  const rps = num(/^Requests\/sec:\s+([\d.]+)/m);
  const reqLine = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read/m.exec(text);
  const requests = reqLine ? Number(reqLine[1]) : NaN;
  const bytes = reqLine ? Number(reqLine[4]) * SIZE_UNITS[reqLine[5]] : NaN;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = num(/Non-2xx or 3xx responses:\s+(\d+)/);
  return {
    rps,
    p50: pct(50),
    p99: pct(99),
    requests,
    bytesPerResp: requests > 0 ? bytes / requests : NaN,
    non2xx: Number.isFinite(non2xx) ? non2xx : 0,
    socketErrors: sock ? sock.slice(1, 5).reduce((s, x) => s + Number(x), 0) : 0,
    socketDetail: sock ? sock[0] : '',
  };
}

function parseAutocannon(text) {
  const j = JSON.parse(text.slice(text.indexOf('{')));
  return {
    rps: j.requests.total / (j.duration || 1),
    p50: j.latency.p50,
    p99: j.latency.p99,
    p999: j.latency.p99_9,
    requests: j.requests.total,
    bytesPerResp: j.requests.total > 0 ? j.throughput.total / j.requests.total : NaN,
    non2xx: j.non2xx || 0,
    socketErrors: (j.errors || 0) + (j.timeouts || 0),
    socketDetail: `errors ${j.errors || 0}, timeouts ${j.timeouts || 0}`,
  };
}

// Fixed-rate phase with wrk: wrk -c64 with this script sends each request at its slot in a fixed
// schedule (one slot every 1/rate s per wrk thread). wrk calls delay() whenever a connection is
// free to send; the connection claims the next unclaimed slot and waits for it (wrk timers have
// 1 ms granularity). A free connection whose slot is already more than 2 ms past counts as a late
// send: at that moment all connections were busy, which is where coordinated omission starts (its
// latency is measured from the actual send, not from the slot). done() prints one JSON line with
// the percentiles wrk's --latency does not print (p99.9) and the late-send count.
// The script defines no request(): wrk's own wrk.init() formats the one request every connection
// sends from wrk.headers, which hold the -H headers of the command line (the identity scenarios'
// Authorization header), so paced requests carry the same headers as closed-loop ones.
const PACED_LUA = `-- written by bench/run.js: fixed-rate pacing for wrk (arg 1 = req/s per wrk thread)
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } gh_bench_timespec;
int clock_gettime(int clk_id, gh_bench_timespec *tp);
]]
local ts = ffi.new("gh_bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local interval_us = nil
local next_us = nil
scheduled = 0
late = 0

function init(args)
  interval_us = 1e6 / tonumber(args[1])
end

function delay()
  local t = now_us()
  if next_us == nil then next_us = t end
  local slot = next_us
  next_us = next_us + interval_us
  scheduled = scheduled + 1
  local d = slot - t
  if d < -2000 then late = late + 1 end
  if d <= 0 then return 0 end
  return math.floor(d / 1000)
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local s, l = 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("scheduled")
    l = l + t:get("late")
  end
  io.write(string.format('GATEHOUSE_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"scheduled":%d,"late":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max, s, l,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
end
`;

/** Parses the GATEHOUSE_BENCH line the paced wrk script prints. Latencies in milliseconds. */
function parsePaced(text) {
  const m = /^GATEHOUSE_BENCH (\{.*\})\s*$/m.exec(text);
  if (!m) throw new Error('no GATEHOUSE_BENCH line');
  const j = JSON.parse(m[1]);
  const socketErrors = j.connect + j.read + j.write + j.timeout;
  return {
    rps: j.duration_us > 0 ? (j.requests * 1e6) / j.duration_us : NaN,
    p50: j.p50_us / 1000,
    p99: j.p99_us / 1000,
    p999: j.p999_us / 1000,
    max: j.max_us / 1000,
    requests: j.requests,
    bytesPerResp: j.requests > 0 ? j.bytes / j.requests : NaN,
    non2xx: j.status,
    socketErrors,
    socketDetail: `connect ${j.connect}, read ${j.read}, write ${j.write}, timeout ${j.timeout}`,
    scheduled: j.scheduled,
    late: j.late,
  };
}

let LOAD = null; // closed-loop phase: { tool, bin, version }
let RATE_LOAD = null; // fixed-rate phase: { tool: 'wrk' | 'autocannon', bin, version, script }
let OPTS = null;

/** The load generator's command line; headers ({ name: value }) go on every request. */
function loadCommand(url, seconds, { rate = 0, headers = {} } = {}) {
  const h = Object.entries(headers);
  const wrkHeaders = h.flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const acHeaders = h.flatMap(([k, v]) => ['-H', `${k}=${v}`]);
  if (rate) {
    if (RATE_LOAD.tool === 'wrk') {
      const perThread = String(rate / OPTS.threads);
      return wrapCommand(1, RATE_LOAD.bin, ['-t', String(OPTS.threads), '-c', String(OPTS.connections), '-d', `${seconds}s`, '--timeout', `${OPTS.timeout}s`, ...wrkHeaders, '-s', RATE_LOAD.script, url, '--', perThread]);
    }
    // -C: record raw latencies. autocannon's own correction assumes an interval of
    // ceil(1 / per-connection rate) = 1 ms and would add made-up samples (see bench/README.md).
    return wrapCommand(1, process.execPath, [RATE_LOAD.bin, '-c', String(OPTS.connections), '-R', String(rate), '-C', '-d', String(seconds), '-t', String(OPTS.timeout), ...acHeaders, '-j', url]);
  }
  if (LOAD.tool === 'wrk') {
    return wrapCommand(1, LOAD.bin, ['-t', String(OPTS.threads), '-c', String(OPTS.connections), '-d', `${seconds}s`, '--latency', '--timeout', `${OPTS.timeout}s`, ...wrkHeaders, url]);
  }
  return wrapCommand(1, process.execPath, [LOAD.bin, '-c', String(OPTS.connections), '-d', String(seconds), '-t', String(OPTS.timeout), ...acHeaders, '-j', url]);
}

/**
 * One bounded load run against url: closed loop, or at a fixed rate (req/s) when rate is given;
 * headers ({ name: value }, e.g. the identity scenarios' Authorization) go on every request.
 * Returns parsed numbers plus CPU accounting.
 */
function runLoad(url, seconds, gatewayPid, { rate = 0, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const full = loadCommand(url, seconds, { rate, headers });
    const tool = rate ? RATE_LOAD.tool : LOAD.tool;
    const paced = rate && tool === 'wrk';
    const child = spawn(full[0], full.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const rec = { label: tool, child, exited: null };
    children.add(rec);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const cores0 = readCoreTimes();
    const gw0 = gatewayPid ? procCpuSeconds(gatewayPid) : NaN;
    const loop0 = gatewayPid ? procCpuSeconds(gatewayPid, true) : NaN;
    const t0 = Date.now();
    // Hard bound: the tool stops itself after `seconds`; kill it if it does not.
    const killer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, (seconds + OPTS.timeout + 15) * 1000);
    child.on('error', (e) => {
      clearTimeout(killer);
      children.delete(rec);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      children.delete(rec);
      const wall = (Date.now() - t0) / 1000;
      const cores1 = readCoreTimes();
      const gw1 = gatewayPid ? procCpuSeconds(gatewayPid) : NaN;
      const loop1 = gatewayPid ? procCpuSeconds(gatewayPid, true) : NaN;
      const rss = gatewayPid ? procRssMb(gatewayPid) : NaN;
      if (code !== 0 && !(tool === 'wrk' && out.includes('Requests/sec'))) {
        reject(new Error(`${tool} failed (code ${code}, signal ${signal}): ${err || out}`));
        return;
      }
      let r;
      try {
        r = paced ? parsePaced(out) : tool === 'wrk' ? parseWrk(out) : parseAutocannon(out);
      } catch (e) {
        reject(new Error(`cannot parse ${tool} output: ${e.message}\n${out}\n${err}`));
        return;
      }
      if (!Number.isFinite(r.rps)) {
        reject(new Error(`cannot parse ${tool} output:\n${out}\n${err}`));
        return;
      }
      r.offered = rate || NaN;
      r.core0 = coreBusy(cores0, cores1, '0');
      r.core1 = coreBusy(cores0, cores1, '1');
      const gwCpu = gw1 - gw0;
      r.gwCpuPct = Number.isFinite(gwCpu) ? (100 * gwCpu) / wall : NaN;
      r.gwCpuUsPerReq = Number.isFinite(gwCpu) && r.requests > 0 ? (gwCpu * 1e6) / r.requests : NaN;
      const loopCpu = loop1 - loop0;
      // The event loop's share: what the request thread pays, apart from worker threads.
      r.loopCpuUsPerReq = Number.isFinite(loopCpu) && r.requests > 0 ? (loopCpu * 1e6) / r.requests : NaN;
      r.rssMb = rss;
      r.raw = out;
      resolve(r);
    });
  });
}

/**
 * Picks the fixed-rate load generator: wrk with the paced Lua script (needs wrk built with LuaJIT,
 * as Debian's is), checked with a 1 s paced run against probeUrl; else autocannon -R.
 */
async function setupRateTool(opts, probeUrl, notes) {
  const choice = opts['rate-tool'];
  const acPkg = path.join(BENCH_DIR, 'node_modules', 'autocannon', 'package.json');
  const autocannon = () => ({
    tool: 'autocannon',
    bin: path.join(BENCH_DIR, 'node_modules', 'autocannon', 'autocannon.js'),
    version: `autocannon ${JSON.parse(fs.readFileSync(acPkg, 'utf8')).version} -R (-C: raw latencies)`,
  });
  if (choice !== 'autocannon') {
    const wrk = LOAD.tool === 'wrk' ? LOAD.bin : which('wrk');
    let why = 'wrk is not available';
    if (wrk) {
      const script = path.join(tmpDir, 'paced.lua');
      fs.writeFileSync(script, PACED_LUA);
      const wrkVersion = LOAD.tool === 'wrk' ? LOAD.version : 'wrk';
      RATE_LOAD = { tool: 'wrk', bin: wrk, version: `${wrkVersion} with a fixed-rate Lua script (bench/run.js)`, script };
      try {
        const r = await runLoad(probeUrl, 1, null, { rate: 200 });
        if (r.requests > 0) return;
        why = 'the paced probe completed no request';
      } catch (e) {
        why = `the paced wrk probe failed: ${e.message.split('\n').slice(0, 3).join(' ')}`;
      }
    }
    if (choice === 'wrk') throw new Error(`--rate-tool wrk: ${why}`);
    notes.push(`fixed-rate phase: ${why}; fell back to autocannon -R, which sends each connection's quota in a burst at the start of every second — its fixed-rate latencies are close to closed-loop ones (see bench/README.md)`);
    progress(`fixed-rate phase: ${why}; using autocannon -R`);
  }
  RATE_LOAD = autocannon();
  if (choice === 'autocannon') {
    notes.push('fixed-rate phase with autocannon -R (--rate-tool autocannon): each connection sends its per-second quota back to back at the start of every second, so the gateway is saturated for part of each second and the latencies are close to closed-loop ones; 1 ms resolution (see bench/README.md)');
  }
}

// ---------------------------------------------------------------------------------------------
// servers

/** Scenario h: the audit trail (async, SQLite, checkpoints) with key files written into dir (mode 0600). */
function auditLines(dir) {
  const key = path.join(dir, 'audit-k1.key');
  fs.writeFileSync(key, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const cpKey = path.join(dir, 'audit-checkpoint.key');
  fs.writeFileSync(cpKey, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return ['audit:', '  enabled: true', '  keys:', `    - { id: k1, file: ${JSON.stringify(key)} }`, `  checkpoint_key_file: ${JSON.stringify(cpKey)}`];
}

/**
 * A gatehouse config. stateDir: state.dir (SQLite files: audit store, identity registry);
 * audit: the lines from auditLines (scenario h); identity: from makeIdentity (scenario e).
 */
function gatehouseConfig({ port, adminPort, upstreamPort, edge, logLevel, stateDir, audit, identity }) {
  const lines = [
    '# written by bench/run.js',
    'listen:',
    `  - address: 127.0.0.1:${port}`,
    'admin:',
    `  listen: 127.0.0.1:${adminPort}`,
    'log:',
    `  level: ${logLevel}`,
    // Benchmarks run as root on CI machines: gatehouse refuses that unless told (docs/deploy.md).
    ...(process.getuid?.() === 0 ? ['process:', '  serve_as_root: true'] : []),
    ...(stateDir ? ['state:', `  dir: ${JSON.stringify(stateDir)}`] : []),
    ...(audit ?? []),
    'sites:',
    '  - id: bench',
    '    hosts: ["127.0.0.1", "localhost"]',
    '    upstream:',
    `      urls: ["http://127.0.0.1:${upstreamPort}"]`,
  ];
  if (edge) {
    lines.push(
      '    ip_filter:',
      '      allow: ["127.0.0.0/8", "::1"]',
      '    rate_limits:',
      '      - id: general',
      '        limit: 1000000000',
      '        window: 1m',
    );
  }
  if (identity) {
    lines.push(
      '    auth: {}',
      'auth:',
      '  issuers:',
      '    - id: bench',
      '      iss: https://bench.local',
      '      audiences: [gatehouse]',
      '      algorithms: [RS256]',
      `      keys: [{ kid: bench-1, file: ${JSON.stringify(identity.publicKeyFile)} }]`,
    );
  }
  return lines.join('\n') + '\n';
}

/** An RS256 (2048-bit) key pair and one token for the identity scenarios (e, f, g). */
async function makeIdentity(dir) {
  const { SignJWT } = await import(path.join(ROOT, 'node_modules', 'jose', 'dist', 'webapi', 'index.js'));
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKeyFile = path.join(dir, 'bench-1.pub.pem');
  fs.writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ sub: 'bench-agent', type: 'agent', jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1', typ: 'JWT' })
    .setIssuer('https://bench.local')
    .setAudience('gatehouse')
    .setIssuedAt(now)
    .setExpirationTime(now + 20 * 3600)
    .sign(privateKey);
  fs.writeFileSync(path.join(dir, 'revoked-jti.map'), 'never-issued-jti 1\n');
  return { publicKeyFile, token };
}

/** HAProxy 2.6 doing (e)'s work as far as it can: allowlist, jwt_verify + exp, jti map lookup, per-identity and per-IP stick tables, headers. */
function haproxyConfig({ port, upstreamPort, identity, dir }) {
  return `# written by bench/run.js
global
  nbthread 1
  maxconn 5000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
backend st_ip
  stick-table type ip size 100k expire 1m store http_req_rate(1m)
backend st_sub
  stick-table type string len 128 size 100k expire 1m store http_req_rate(1m)
frontend fe
  bind 127.0.0.1:${port}
  tcp-request connection reject unless { src 127.0.0.0/8 } || { src ::1 }
  http-request track-sc1 src table st_ip
  http-request deny deny_status 429 if { sc_http_req_rate(1,st_ip) gt 1000000000 }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"${identity.publicKeyFile}") -m int 1 }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str https://bench.local }
  http-request set-var(txn.jti) var(txn.bearer),jwt_payload_query('$.jti')
  http-request deny deny_status 401 if { var(txn.jti),map(${path.join(dir, 'revoked-jti.map')}) -m found }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')
  http-request track-sc0 var(txn.sub) table st_sub
  http-request deny deny_status 429 if { sc_http_req_rate(0,st_sub) gt 1000000000 }
  http-request del-header Authorization
  http-request set-header X-Gatehouse-Subject %[var(txn.sub)]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  option forwardfor
  http-response set-header Strict-Transport-Security "max-age=31536000; includeSubDomains; preload"
  http-response set-header X-Frame-Options SAMEORIGIN
  http-response set-header X-Content-Type-Options nosniff
  http-response set-header Referrer-Policy strict-origin-when-cross-origin
  http-response set-header Permissions-Policy "geolocation=(), microphone=(), camera=()"
  http-response del-header Server
  default_backend be
backend be
  server s1 127.0.0.1:${upstreamPort}
`;
}

const EXPECTED_EDGE_HEADERS = ['strict-transport-security', 'x-frame-options', 'x-content-type-options', 'referrer-policy', 'permissions-policy'];

/** One GET through the target: must be 200 with the upstream's body. Returns notes for the report. */
async function sanityCheck(target, upstreamBody) {
  const res = await httpGet(target.url, 5000, target.headers ?? {});
  if (target.identity) {
    // The identity variants must refuse a request without a token.
    const anon = await httpGet(target.url);
    if (anon.status !== 401) throw new Error(`${target.label}: a request without a token answered ${anon.status}, expected 401`);
  }
  if (res.status !== 200) throw new Error(`${target.label}: GET / answered ${res.status}, expected 200: ${res.body.slice(0, 200)}`);
  if (res.body !== upstreamBody) throw new Error(`${target.label}: GET / body differs from the upstream's: ${JSON.stringify(res.body.slice(0, 200))}`);
  const notes = [];
  if (target.kind !== 'upstream' && target.kind !== 'floor') {
    // gatehouse sends HSTS only on connections that are HTTPS (RFC 6797 §7.2: a browser
    // ignores it over plain HTTP), and the bench talks plain HTTP; fastify and HAProxy send it anyway.
    const missing = EXPECTED_EDGE_HEADERS.filter((h) => !(h in res.headers) && !(h === 'strict-transport-security' && target.kind === 'gatehouse'));
    if (missing.length) notes.push(`${target.label}: response lacks ${missing.join(', ')}`);
    if ('server' in res.headers) notes.push(`${target.label}: response carries a Server header (${res.headers.server})`);
  }
  target.headerNames = Object.keys(res.headers).sort();
  return notes;
}

// ---------------------------------------------------------------------------------------------
// report

function buildReport({ opts, cmdline, startedAt, elapsedS, targets, results, fixed, notes, buildNote, pinning, haproxyVersion }) {
  const cpuModel = (() => {
    try {
      const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
      return m ? m[1].trim() : os.cpus()[0]?.model || 'unknown';
    } catch {
      return os.cpus()[0]?.model || 'unknown';
    }
  })();
  const nproc = (() => {
    const r = spawnSync('nproc', [], { encoding: 'utf8', timeout: 2000 });
    return (r.stdout || '').trim() || String(os.cpus().length);
  })();
  const commit = (() => {
    const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? r.stdout.trim() : 'no commit';
  })();

  const med = {};
  for (const k of opts.list) {
    const rs = results[k];
    med[k] = {
      rps: median(rs.map((r) => r.rps)),
      p99: median(rs.map((r) => r.p99)),
      p50: median(rs.map((r) => r.p50)),
      bytes: median(rs.map((r) => r.bytesPerResp)),
      gwUs: median(rs.map((r) => r.gwCpuUsPerReq)),
      loopUs: median(rs.map((r) => r.loopCpuUsPerReq)),
      rss: median(rs.map((r) => r.rssMb)),
      rssMax: Math.max(...rs.map((r) => r.rssMb)),
      gwPct: median(rs.map((r) => r.gwCpuPct)),
      core0: median(rs.map((r) => r.core0)),
      core1: median(rs.map((r) => r.core1)),
      non2xx: rs.reduce((s, r) => s + r.non2xx, 0),
      sockErr: rs.reduce((s, r) => s + r.socketErrors, 0),
    };
  }
  const direct = med.a && results.a.length ? med.a.rps : NaN;
  const fmed = {};
  for (const k of fixed.list) {
    const rs = fixed.results[k];
    fmed[k] = {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      p999: median(rs.map((r) => r.p999)),
      gwUs: median(rs.map((r) => r.gwCpuUsPerReq)),
      latePct: median(rs.map((r) => (r.scheduled > 0 ? (100 * r.late) / r.scheduled : NaN))),
      errors: rs.reduce((s, r) => s + r.non2xx + r.socketErrors, 0),
    };
  }
  const haveFixed = (k) => fixed.results[k] && fixed.results[k].length > 0;

  const L = [];
  L.push(`# gatehouse edge benchmark — ${startedAt.toISOString()}`);
  L.push('');
  L.push('```');
  L.push(`$ ${cmdline}`);
  L.push('```');
  L.push('');
  L.push(`- node ${process.version}, nproc ${nproc}, ${cpuModel}, Linux ${os.release()}`);
  L.push(`- gatehouse commit ${commit}; ${buildNote}`);
  L.push(`- load generator: ${LOAD.version}${LOAD.tool === 'wrk' ? ` (-t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency --timeout ${opts.timeout}s)` : ` (-c ${opts.connections} -d ${opts.duration})`}`);
  if (fixed.list.length) {
    L.push(`- fixed-rate phase: ${RATE_LOAD.version}, ${fmtInt(fixed.rate)} req/s offered over ${opts.connections} connections (${fixed.rateNote}), -d${opts.duration}s`);
  } else L.push(`- fixed-rate phase: ${opts['fixed-rate'] ? `not run (needs one of ${FIXED_RATE_SCENARIOS.join(', ')})` : 'skipped (--no-fixed-rate)'}`);
  if (haproxyVersion) L.push(`- (g): ${haproxyVersion}`);
  L.push(`- ${opts.runs} run(s) × ${opts.duration}s per scenario and phase, interleaved ${opts.list.join(',')}; warm-up ${opts.warmup}s per server; gatehouse log.level ${opts['log-level']}`);
  L.push(`- pinning: ${pinning}`);
  L.push(`- wall time ${elapsedS.toFixed(0)}s`);
  L.push('');
  L.push(`### Closed loop: throughput (${opts.connections} requests always in flight)`);
  L.push('');
  L.push('| scenario | median req/s | ratio to direct | median p99 ms | per-run req/s | per-run p99 ms |');
  L.push('| --- | ---: | ---: | ---: | --- | --- |');
  for (const k of opts.list) {
    const t = targets[k];
    const rs = results[k];
    if (!rs.length) {
      L.push(`| ${t.label} | n/a | n/a | n/a | ${t.error ? 'unavailable' : 'no runs'} | |`);
      continue;
    }
    L.push(
      `| ${t.label} | ${fmtInt(med[k].rps)} | ${Number.isFinite(direct) ? fmt(med[k].rps / direct) + '×' : 'n/a'} | ${fmt(med[k].p99)} | ${rs.map((r) => fmtInt(r.rps)).join(', ')} | ${rs.map((r) => fmt(r.p99)).join(', ')} |`,
    );
  }
  L.push('');
  L.push('The closed-loop p99 is queueing: with every connection always busy, mean latency ≈ connections ÷ req/s (Little\'s law), however fast each request is handled.');
  L.push('');

  if (fixed.list.length) {
    L.push(`### Fixed rate: latency at ${fmtInt(fixed.rate)} req/s offered, ${opts.connections} connections`);
    L.push('');
    L.push('| scenario | offered req/s | achieved req/s | median p50 ms | median p99 ms | median p99.9 ms | gateway CPU µs/req | late sends | per-run p99 ms |');
    L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    for (const k of fixed.list) {
      const rs = fixed.results[k];
      if (!rs.length) {
        L.push(`| ${targets[k].label} | ${fmtInt(fixed.rate)} | n/a | n/a | n/a | n/a | n/a | n/a | no runs |`);
        continue;
      }
      const m = fmed[k];
      L.push(
        `| ${targets[k].label} | ${fmtInt(fixed.rate)} | ${fmtInt(m.rps)} | ${fmt(m.p50)} | ${fmt(m.p99)} | ${fmt(m.p999)} | ${k === 'a' ? '—' : fmt(m.gwUs, 1)} | ${Number.isFinite(m.latePct) ? fmt(m.latePct, 1) + ' %' : 'n/a'} | ${rs.map((r) => fmt(r.p99)).join(', ')} |`,
      );
    }
    L.push('');
    L.push(
      RATE_LOAD.tool === 'wrk'
        ? 'Latency runs from the moment a request is written to its last response byte. *Late sends*: requests sent more than 2 ms after their slot because all connections were busy — their wait is not in the latency (coordinated omission); near 0 % means every request went out on time and the percentiles are what an open-loop client would see. p99.9 rests on ~0.1 % of the samples (a few dozen per run): read it as an order of magnitude.'
        : 'autocannon -R sends each connection\'s per-second quota back to back at the start of every second: the gateway is saturated for part of each second, so these latencies are close to closed-loop ones and over-state the unsaturated latency; autocannon records whole milliseconds and measures from the actual send (coordinated omission). Late sends are not tracked.',
    );
    L.push('');
  }

  // Headline figures.
  L.push('## Headline');
  L.push('');
  const have = (k) => results[k] && results[k].length > 0;
  // The edge headlines ((c)/(d), (c)'s p99) are printed as n/a only in runs that are about the edge.
  const edgeRun = opts.list.includes('d') || !opts.list.some((k) => 'efgh'.includes(k));
  if (have('c') && have('d')) {
    const ratio = med.c.rps / med.d.rps;
    const rounds = [];
    for (let i = 0; i < Math.min(results.c.length, results.d.length); i++) rounds.push(results.c[i].rps / results.d[i].rps);
    L.push(
      `- **(c)/(d) throughput: ${fmt(ratio)}×** (target ≥ 2×: ${ratio >= 2 ? 'met' : 'NOT met'}); per round: ${rounds.map((x) => fmt(x)).join(', ')} (median ${fmt(median(rounds))})`,
    );
    L.push(
      `- (d)/(c) gateway CPU per request: ${fmt(med.d.gwUs / med.c.gwUs)}× (${fmt(med.c.gwUs, 1)} vs ${fmt(med.d.gwUs, 1)} µs/req) — what the throughput ratio would be with core 0 fully theirs; less sensitive to other load on the machine`,
    );
  } else if (edgeRun) L.push('- (c)/(d) throughput: n/a (needs scenarios c and d)');
  const at64 = opts.connections === 64 ? '' : ` — measured at ${opts.connections} connections, the target is stated for 64`;
  if (fixed.list.length) {
    const rateText = `${fmtInt(fixed.rate)} req/s fixed rate, ${opts.connections} connections`;
    for (const k of ['c', 'e', 'h', 'd', 'f', 'g', 'a']) {
      if (!fixed.list.includes(k)) continue;
      if (!haveFixed(k)) {
        L.push(`- (${k}) p99 at ${rateText}: n/a (no runs)`);
        continue;
      }
      const m = fmed[k];
      const target = k === 'c' ? ` (target ≤ 5 ms: ${m.p99 <= 5 ? 'met' : 'NOT met'})${at64}` : k === 'a' ? ' (the rig\'s own floor)' : ' (for comparison)';
      const bold = k === 'c' ? '**' : '';
      const achieved = m.rps < 0.95 * fixed.rate ? ` — only ${fmtInt(m.rps)} req/s achieved` : '';
      L.push(`- ${bold}(${k}) p99 at ${rateText}: ${fmt(m.p99)} ms${bold}${target}; p50 ${fmt(m.p50)} ms, p99.9 ${fmt(m.p999)} ms${achieved}`);
    }
    const gateways = FIXED_RATE_GATEWAYS.filter(haveFixed);
    if (haveFixed('a') && gateways.length) {
      const added = gateways.map((k) => `(${k}) ${fmt(fmed[k].p50 - fmed.a.p50)} ms at p50, ${fmt(fmed[k].p99 - fmed.a.p99)} ms at p99`);
      L.push(`- latency added over (a) at that rate (difference of medians): ${added.join('; ')}`);
    }
  } else L.push(`- fixed-rate p99: n/a (${opts['fixed-rate'] ? `needs one of ${FIXED_RATE_SCENARIOS.join(', ')}` : '--no-fixed-rate'})`);
  if (have('c')) {
    L.push(
      `- (c) closed-loop p99: ${fmt(med.c.p99)} ms at ${opts.connections} connections — queueing-dominated, not the gateway's added latency (target ≤ 5 ms: ${med.c.p99 <= 5 ? 'met' : 'NOT met'} in closed loop)${at64}`,
    );
    if (have('a')) {
      L.push(
        `- for scale: (a) direct closed-loop p99 is ${fmt(med.a.p99)} ms on this rig; with ${opts.connections} closed-loop connections mean latency ≈ connections ÷ req/s (Little's law), so a closed-loop p99 of 5 ms needs well over ${fmtInt((opts.connections / 5) * 1000)} req/s through the gateway`,
      );
    }
  } else if (edgeRun) L.push('- (c) closed-loop p99: n/a (needs scenario c)');

  // Identity: (e) against (f) fastify + @fastify/jwt and (g) HAProxy jwt_verify.
  const perRound = (x, y) => {
    const out = [];
    for (let i = 0; i < Math.min(results[x].length, results[y].length); i++) out.push(results[x][i].rps / results[y][i].rps);
    return out;
  };
  if (have('e')) {
    if (have('a')) L.push(`- (e) identity pipeline at **${fmt(med.e.rps / med.a.rps)}× direct** throughput`);
    if (have('c')) L.push(`- (e)/(c) throughput: ${fmt(med.e.rps / med.c.rps)}× (what the identity stages cost on top of the edge); gateway CPU per request ${fmt(med.c.gwUs, 1)} → ${fmt(med.e.gwUs, 1)} µs`);
    if (have('f')) {
      const r = med.e.rps / med.f.rps;
      L.push(`- **(e)/(f) throughput: ${fmt(r)}×** (target ≥ 3×: ${r >= 3 ? 'met' : 'NOT met'}); per round: ${perRound('e', 'f').map((x) => fmt(x)).join(', ')}; CPU per request (f)/(e): ${fmt(med.f.gwUs / med.e.gwUs)}×`);
    } else if (opts.list.includes('f')) L.push('- (e)/(f) throughput: n/a ((f) did not run)');
    if (have('g')) {
      const r = med.e.rps / med.g.rps;
      L.push(`- **(e)/(g) throughput: ${fmt(r)}×** (target ≥ 1, at or above HAProxy: ${r >= 1 ? 'met' : 'NOT met'}); per round: ${perRound('e', 'g').map((x) => fmt(x)).join(', ')}; CPU per request (g)/(e): ${fmt(med.g.gwUs / med.e.gwUs)}×`);
    } else if (opts.list.includes('g')) L.push('- (e)/(g) throughput: n/a ((g) did not run)');
    if (have('i')) {
      L.push(`- (e)/(i) throughput: ${fmt(med.e.rps / med.i.rps)}× of the Node.js floor (node:http + undici, no security work); gateway CPU per request (i) ${fmt(med.i.gwUs, 1)} µs vs (e) ${fmt(med.e.gwUs, 1)} µs`);
      if (have('g')) {
        // CPU per request, not req/s, decides: the gateway core is saturated in every scenario,
        // so throughput ≈ 1 / CPU per request, and CPU time is far less sensitive to noise.
        const floorOverG = med.i.gwUs / med.g.gwUs;
        L.push(
          `- the floor against HAProxy: CPU per request (i) ${fmt(med.i.gwUs, 1)} µs vs (g) ${fmt(med.g.gwUs, 1)} µs = ${fmt(floorOverG)}× (per round: ${results.i.map((r, n) => fmt(r.gwCpuUsPerReq / (results.g[n]?.gwCpuUsPerReq ?? NaN))).join(', ')}); throughput (i)/(g) ${fmt(med.i.rps / med.g.rps)}×. ` +
            (floorOverG > 1
              ? 'Above 1: node:http + undici alone, doing none of the security work, costs more CPU per request than HAProxy doing all of it, so no gateway on this platform can reach (g) on this machine.'
              : 'At or below 1: the platform leaves room to reach (g).'),
        );
      }
    }
  } else if (opts.list.includes('f') || opts.list.includes('g')) L.push('- (e)/(f), (e)/(g) throughput: n/a (needs scenario e)');

  // Audit: (h) = (c) + the audit trail.
  if (have('c') && have('h')) {
    const add = med.h.gwUs / med.c.gwUs - 1;
    const rounds = [];
    for (let i = 0; i < Math.min(results.c.length, results.h.length); i++) rounds.push(results.h[i].gwCpuUsPerReq / results.c[i].gwCpuUsPerReq - 1);
    L.push(
      `- **audit cost (h) vs (c): ${fmt(add * 100, 1)} % gateway CPU per request** (${fmt(med.c.gwUs, 1)} → ${fmt(med.h.gwUs, 1)} µs/req; target ≤ 10 %: ${add <= 0.1 ? 'met' : 'NOT met'}); per round: ${rounds.map((x) => fmt(x * 100, 1) + ' %').join(', ')}`,
    );
  } else if (opts.list.includes('h')) L.push('- audit cost (h) vs (c): n/a (needs scenarios c and h)');
  // The same in µs, split by thread: the request thread (event loop) and all threads; in
  // the closed loop, and at the fixed rate, where every gateway serves the same req/s
  // (the per-request CPU of a saturated core also moves with batching and cache pressure).
  for (const [phase, rsOf, ok] of [
    ['closed loop', (k) => results[k], have],
    ['fixed rate', (k) => fixed.results[k], haveFixed],
  ]) for (const k of ['h', 'j']) {
    if (!(ok('c') && ok(k))) continue;
    const rc = rsOf('c');
    const rk = rsOf(k);
    const n = Math.min(rc.length, rk.length);
    const per = (f) => Array.from({ length: n }, (_, i) => f(rk[i]) - f(rc[i]));
    const loop = per((r) => r.loopCpuUsPerReq);
    const all = per((r) => r.gwCpuUsPerReq);
    L.push(
      `- audit cost (${k}) − (c) per request, ${phase}: **event loop ${fmt(median(loop), 1)} µs, all threads ${fmt(median(all), 1)} µs** (medians of per-round differences; event loop ${fmt(median(rc.map((r) => r.loopCpuUsPerReq)), 1)} → ${fmt(median(rk.map((r) => r.loopCpuUsPerReq)), 1)} µs/req, all threads ${fmt(median(rc.map((r) => r.gwCpuUsPerReq)), 1)} → ${fmt(median(rk.map((r) => r.gwCpuUsPerReq)), 1)}); per round event loop ${loop.map((x) => fmt(x, 1)).join(', ')}, all threads ${all.map((x) => fmt(x, 1)).join(', ')}; RSS at the end of each run (c) ${fmt(median(rc.map((r) => r.rssMb)), 0)} MB, (${k}) median ${fmt(median(rk.map((r) => r.rssMb)), 0)} MB, max ${fmt(Math.max(...rk.map((r) => r.rssMb)), 0)} MB`,
    );
  }
  L.push('');

  L.push('## Diagnostics (closed loop, medians)');
  L.push('');
  L.push('| scenario | p50 ms | bytes/response | gateway CPU % | gateway CPU µs/req | event loop µs/req | RSS MB | core 0 busy % | core 1 busy % | non-2xx | socket errors |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const k of opts.list) {
    if (!results[k].length) continue;
    const m = med[k];
    L.push(
      `| ${targets[k].label} | ${fmt(m.p50)} | ${fmtInt(m.bytes)} | ${k === 'a' ? '—' : fmt(m.gwPct, 0)} | ${k === 'a' ? '—' : fmt(m.gwUs, 1)} | ${k === 'a' ? '—' : fmt(m.loopUs, 1)} | ${k === 'a' ? '—' : fmt(m.rss, 0)} | ${fmt(m.core0, 0)} | ${fmt(m.core1, 0)} | ${m.non2xx} | ${m.sockErr} |`,
    );
  }
  L.push('');
  L.push('Gateway CPU is the process\' user+system time during the run (100 % = one full core); event loop is its main thread\'s alone (the worker threads — audit sealing, the SQLite store — excluded); RSS is read at the end of each run. ');
  L.push('Core 1 near 100 % in (a) means the load generator and upstream saturate their core, so (a) is the ceiling of this rig, not of the upstream.');
  L.push('');
  if (notes.length) {
    L.push('## Notes');
    L.push('');
    for (const n of notes) L.push(`- ${n.replace(/\n/g, '\n  ')}`);
    L.push('');
  }
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------
// main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  OPTS = opts;
  keepTmp = opts['keep-tmp'];
  const startedAt = new Date();
  const cmdline = ['node', path.relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].map(shellQuote).join(' ');
  const notes = [];

  // Pinning layout.
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  PIN = opts.pin && !!which('taskset') && cores >= 2;
  if (opts.pin && !PIN) notes.push(cores < 2 ? 'fewer than 2 cores: processes not pinned' : 'taskset not found: processes not pinned');
  const pinning = PIN ? 'gateway under test (b to i) on core 0; upstream and load generator on core 1 (taskset -c)' : 'none';
  const sp = which('setpriv');
  if (sp && spawnSync(sp, ['--help'], { encoding: 'utf8', timeout: 2000 }).stdout?.includes('--pdeathsig')) SETPRIV = sp;

  // Installs (before the watchdog starts: they can be slow on a fresh machine).
  ensureBenchDeps(opts);
  LOAD = ensureLoadTool(opts);
  if (LOAD.tool === 'autocannon') notes.push('wrk unavailable: autocannon (single-threaded node) generated the load; absolute numbers are lower and not comparable with wrk runs');
  const wantsGatehouse = opts.list.some((k) => SCENARIOS[k].kind === 'gatehouse');
  const buildNote = wantsGatehouse ? ensureGatehouseBuilt(opts) : 'gatehouse not under test';
  const haproxy = opts.list.includes('g') ? ensureHaproxy(opts) : null;

  // Watchdog: the whole run is bounded in time.
  const perRun = opts.duration + 1;
  const fixedList = opts['fixed-rate'] ? opts.list.filter((k) => FIXED_RATE_SCENARIOS.includes(k)) : [];
  const estimate =
    30 + opts.list.length * (opts.warmup + 1) + opts.runs * opts.list.length * perRun + (fixedList.length ? 3 + opts.runs * fixedList.length * perRun : 0);
  const limitS = Math.ceil(estimate * 1.5 + 120);
  progress(`estimated run time ~${estimate}s (hard limit ${limitS}s)`);
  const watchdog = setTimeout(() => {
    process.stderr.write(`[bench] watchdog: run exceeded ${limitS}s; stopping\n`);
    keepTmp = true;
    cleanup().finally(() => process.exit(2));
  }, limitS * 1000);
  watchdog.unref();

  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
  const ports = await freePorts(1 + 2 * opts.list.length);
  const upstreamPort = ports.shift();
  // Each scenario its own port (and admin port for gatehouse).
  const portOf = Object.fromEntries(opts.list.map((k) => [k, { port: ports.shift(), admin: ports.shift() }]));
  const identity = opts.list.some((k) => SCENARIOS[k].identity) ? await makeIdentity(tmpDir) : null;
  const nodeBin = process.execPath;

  // Upstream (core 1).
  const upstream = startChild('upstream', 1, nodeBin, [path.join(BENCH_DIR, 'upstream.js'), String(upstreamPort)], {
    logFile: path.join(tmpDir, 'upstream.log'),
  });
  await waitForPort(upstream, upstreamPort, 15_000);
  const upstreamBody = (await httpGet(`http://127.0.0.1:${upstreamPort}/`)).body;

  const targets = {};
  for (const k of opts.list) {
    const s = SCENARIOS[k];
    targets[k] = { ...s, url: null, rec: null, error: null, headers: s.identity && identity ? { Authorization: `Bearer ${identity.token}` } : {} };
  }
  if (targets.a) {
    targets.a.url = `http://127.0.0.1:${upstreamPort}/`;
    targets.a.rec = upstream;
  }

  // Gateways under test (core 0). All stay up for the whole run; idle ones cost next to nothing.
  const starts = [];
  for (const k of opts.list) {
    const t = targets[k];
    const { port, admin: adminPort } = portOf[k];
    if (t.kind === 'gatehouse') {
      const cfg = path.join(tmpDir, `gatehouse-${k}.yaml`);
      fs.writeFileSync(
        cfg,
        gatehouseConfig({
          port,
          adminPort,
          upstreamPort,
          edge: t.edge,
          logLevel: opts['log-level'],
          stateDir: t.audit || t.identity ? path.join(tmpDir, `state-${k}`) : null,
          audit: t.audit ? auditLines(tmpDir) : null,
          identity: t.identity ? identity : null,
        }),
      );
      if (t.identity) {
        // The token's subject is a registered agent with its own limit (never reached).
        if (!runSync(nodeBin, [path.join(ROOT, 'bin', 'gatehouse.js'), 'identities', 'add', '--config', cfg, '--subject', 'bench-agent', '--type', 'agent', '--rpm', '1000000000'])) {
          throw new Error('registering the bench identity failed');
        }
      }
      t.url = `http://127.0.0.1:${port}/`;
      const root = t.baseline ? path.resolve(opts.baseline) : ROOT;
      t.rec = startChild(`gatehouse (${k})`, 0, nodeBin, [path.join(root, 'bin', 'gatehouse.js'), 'run', '--config', cfg], {
        logFile: path.join(tmpDir, `gatehouse-${k}.log`),
      });
      starts.push([k, port]);
    } else if (t.kind === 'fastify') {
      t.url = `http://127.0.0.1:${port}/`;
      t.rec = startChild(`fastify (${k})`, 0, nodeBin, [path.join(BENCH_DIR, 'fastify-edge.js'), String(port), `http://127.0.0.1:${upstreamPort}`], {
        logFile: path.join(tmpDir, `fastify-${k}.log`),
        env: t.identity ? { JWT_PUBLIC_KEY_FILE: identity.publicKeyFile } : {},
      });
      starts.push([k, port]);
    } else if (t.kind === 'floor') {
      t.url = `http://127.0.0.1:${port}/`;
      t.rec = startChild(`node floor (${k})`, 0, nodeBin, [path.join(BENCH_DIR, 'node-floor.js'), String(port), `http://127.0.0.1:${upstreamPort}`], {
        logFile: path.join(tmpDir, `node-floor-${k}.log`),
      });
      starts.push([k, port]);
    } else if (t.kind === 'haproxy') {
      if (haproxy.error) {
        t.error = haproxy.error;
        notes.push(`${t.label} unavailable: ${t.error}`);
        progress(`${t.label} unavailable: ${t.error}`);
        continue;
      }
      const cfg = path.join(tmpDir, 'haproxy.cfg');
      fs.writeFileSync(cfg, haproxyConfig({ port, upstreamPort, identity, dir: tmpDir }));
      t.url = `http://127.0.0.1:${port}/`;
      t.rec = startChild(`haproxy (${k})`, 0, haproxy.bin, ['-f', cfg, '-db'], { logFile: path.join(tmpDir, 'haproxy.log') });
      starts.push([k, port]);
    }
  }
  for (const [k, port] of starts) {
    const t = targets[k];
    try {
      await waitForPort(t.rec, port, 30_000);
      notes.push(...(await sanityCheck(t, upstreamBody)));
    } catch (e) {
      t.error = e.message;
      notes.push(`${t.label} unavailable: ${e.message}`);
      progress(`${t.label} unavailable: ${e.message}`);
    }
  }
  if (targets.a) await sanityCheck(targets.a, upstreamBody);
  const active = opts.list.filter((k) => !targets[k].error);
  if (active.length === 0) throw new Error('no scenario could be started');

  const gatewayPid = (k) => (k === 'a' ? null : targets[k].rec.child.pid);

  // Warm-up.
  if (opts.warmup > 0) {
    for (const k of active) {
      progress(`warm-up ${targets[k].label}: ${opts.warmup}s`);
      await runLoad(targets[k].url, opts.warmup, null, { headers: targets[k].headers });
      await sleep(300);
    }
  }

  // Measured runs, interleaved.
  const results = Object.fromEntries(opts.list.map((k) => [k, []]));
  for (let i = 1; i <= opts.runs; i++) {
    for (const k of active) {
      const t = targets[k];
      if (t.rec.exited) {
        throw new Error(`${t.label} died during the run (${JSON.stringify(t.rec.exited)}); log tail:\n${tail(t.rec.logFile)}`);
      }
      const r = await runLoad(t.url, opts.duration, gatewayPid(k), { headers: t.headers });
      results[k].push(r);
      progress(
        `run ${i}/${opts.runs} ${t.label}: ${fmtInt(r.rps)} req/s, p99 ${fmt(r.p99)} ms, p50 ${fmt(r.p50)} ms` +
          (k === 'a' ? '' : `, gateway CPU ${fmt(r.gwCpuPct, 0)}%`) +
          (r.non2xx || r.socketErrors ? `, non-2xx ${r.non2xx}, ${r.socketDetail}` : ''),
      );
      await sleep(500);
    }
  }

  // Fixed-rate phase: every selected scenario but b, at one offered rate, interleaved, on the servers already warm.
  const fixed = { rate: NaN, rateNote: '', list: [], results: Object.fromEntries(opts.list.map((k) => [k, []])) };
  const fixedActive = fixedList.filter((k) => active.includes(k));
  if (opts['fixed-rate'] && fixedActive.length === 0) notes.push(`fixed-rate phase skipped: it runs scenarios ${FIXED_RATE_SCENARIOS.join(', ')}, and none of them is selected or available`);
  if (fixedActive.length) {
    const medRps = (k) => (results[k] && results[k].length ? median(results[k].map((r) => r.rps)) : NaN);
    if (opts.rate > 0) {
      fixed.rate = opts.rate;
      fixed.rateNote = '--rate';
    } else {
      // 50 % of the slowest gateway of this phase (the lower of (c) and (d) in a default run), so
      // every one can sustain it; failing those, of (b) or else (a).
      const basis = FIXED_RATE_GATEWAYS.filter((k) => fixedActive.includes(k) && Number.isFinite(medRps(k)));
      const from = basis.length ? basis : ['b', 'a'].filter((k) => Number.isFinite(medRps(k))).slice(0, 1);
      const lowest = Math.min(...from.map(medRps));
      fixed.rate = Math.max(100, Math.floor((0.5 * lowest) / 100) * 100);
      const of = from.map((k) => `(${k}) ${fmtInt(medRps(k))}`).join(', ');
      fixed.rateNote = `50 % of the ${from.length > 1 ? 'lowest median closed-loop throughput of' : 'median closed-loop throughput of'} ${of}, rounded down to 100`;
    }
    fixed.list = fixedActive;
    await setupRateTool(opts, `http://127.0.0.1:${upstreamPort}/`, notes);
    progress(`fixed-rate phase: ${fmtInt(fixed.rate)} req/s offered, ${opts.connections} connections, ${RATE_LOAD.version} (${fixed.rateNote})`);
    for (let i = 1; i <= opts.runs; i++) {
      for (const k of fixedActive) {
        const t = targets[k];
        if (t.rec.exited) {
          throw new Error(`${t.label} died during the run (${JSON.stringify(t.rec.exited)}); log tail:\n${tail(t.rec.logFile)}`);
        }
        const r = await runLoad(t.url, opts.duration, gatewayPid(k), { rate: fixed.rate, headers: t.headers });
        fixed.results[k].push(r);
        progress(
          `fixed-rate run ${i}/${opts.runs} ${t.label}: ${fmtInt(r.rps)} of ${fmtInt(fixed.rate)} req/s, p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, p99.9 ${fmt(r.p999)} ms` +
            (k === 'a' ? '' : `, gateway ${fmt(r.gwCpuUsPerReq, 1)} µs/req`) +
            (Number.isFinite(r.late) && r.late ? `, ${r.late} late sends` : '') +
            `, core 0/1 busy ${fmt(r.core0, 0)}/${fmt(r.core1, 0)} %` +
            (r.non2xx || r.socketErrors ? `, non-2xx ${r.non2xx}, ${r.socketDetail}` : ''),
        );
        await sleep(500);
      }
    }
  }

  // Per-request logging check: with log.level warn a gatehouse log file should stay small.
  for (const k of active) {
    const t = targets[k];
    if (t.kind !== 'gatehouse') continue;
    let size = 0;
    try {
      size = fs.statSync(t.rec.logFile).size;
    } catch {
      // none
    }
    if (size > 64 * 1024) notes.push(`${t.label}: wrote ${fmtInt(size)} bytes of log during the run (log.level ${opts['log-level']})`);
  }
  // Foreign load: core 0 should only be busy with the gateway under test (idle in a).
  for (const k of opts.list) {
    const other = median(results[k].map((r) => r.core0 - (Number.isFinite(r.gwCpuPct) ? r.gwCpuPct : 0)));
    if (other > 15) {
      notes.push(`${targets[k].label}: core 0 was ~${fmt(other, 0)} % busy with something other than the gateway under test (other processes on the machine) — absolute numbers are depressed; compare ratios`);
    }
  }
  for (const k of opts.list) {
    const total = results[k].reduce((s, r) => s + r.non2xx + r.socketErrors, 0);
    if (total > 0) notes.push(`${targets[k].label}: ${total} non-2xx responses or socket errors over all runs — its numbers are suspect`);
  }
  for (const k of fixed.list) {
    const rs = fixed.results[k];
    const label = `fixed rate, ${targets[k].label}`;
    // (a) leaves core 0 to others; only the gateways' latencies suffer from what else runs there.
    const other = median(rs.map((r) => r.core0 - (Number.isFinite(r.gwCpuPct) ? r.gwCpuPct : 0)));
    if (k !== 'a' && other > 15) notes.push(`${label}: core 0 was ~${fmt(other, 0)} % busy with something other than the gateway under test — its latencies include that interference`);
    const total = rs.reduce((s, r) => s + r.non2xx + r.socketErrors, 0);
    if (total > 0) notes.push(`${label}: ${total} non-2xx responses or socket errors over all runs — its numbers are suspect`);
    const achieved = median(rs.map((r) => r.rps));
    if (achieved < 0.95 * fixed.rate) notes.push(`${label}: achieved ${fmtInt(achieved)} of ${fmtInt(fixed.rate)} req/s offered — the target (or the rig) could not keep up, so this is not an unsaturated measurement`);
    const latePct = median(rs.map((r) => (r.scheduled > 0 ? (100 * r.late) / r.scheduled : NaN)));
    if (latePct > 1) notes.push(`${label}: ${fmt(latePct, 1)} % of requests were sent more than 2 ms after their slot (all ${opts.connections} connections busy) — its percentiles under-state the latency an open-loop client would see (coordinated omission)`);
  }

  const elapsedS = (Date.now() - startedAt.getTime()) / 1000;
  const haproxyVersion = haproxy && !haproxy.error && targets.g && !targets.g.error ? haproxy.version : null;
  const report = buildReport({ opts, cmdline, startedAt, elapsedS, targets, results, fixed, notes, buildNote, pinning, haproxyVersion });
  process.stdout.write(report + '\n');
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `edge-${startedAt.toISOString().replace(/[:.]/g, '-')}.md`);
  fs.writeFileSync(file, report + '\n');
  progress(`report written to ${path.relative(process.cwd(), file)}`);
  clearTimeout(watchdog);
  return opts.list.some((k) => targets[k].error) ? 3 : 0;
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err) => {
    if (cleanedUp) return; // a signal handler is already stopping everything
    process.stderr.write(`[bench] error: ${err && err.message ? err.message : err}\n`);
    keepTmp = true;
    await cleanup();
    process.exit(1);
  },
);
