#!/usr/bin/env node
// gatehouse memory benchmark. NOT part of the test suite: it measures, it asserts nothing.
//
//   node bench/memory.js [--variants edge,audit,policy] [--runs 3] [--duration 20] [--connections 64]
//
// Per run: a fresh gateway (bin/gatehouse.js run) in front of bench/upstream.js; its idle RSS a
// few seconds after start; then wrk -t1 -cN for --duration seconds while VmRSS
// (/proc/PID/status) is sampled every second; then the gateway is stopped. Variants:
//   edge    bench/run.js's scenario (c): allowlist, per-IP rate limit, security headers
//   audit   edge + the audit trail (async, SQLite in state.dir, signed checkpoints) = scenario (h)
//   policy  audit + a Cedar policy on the site (examples/policies/public.cedar, anonymous callers)
// Runs are interleaved (edge, audit, policy, edge, ...). With --baseline DIR every variant is also
// run from another built checkout, interleaved with this one (before/after on the same machine
// state). With --node-flags STR every variant is also run with those node/V8 flags ("+flags").
//
// Pinning (as bench/run.js): the gateway on core 0; upstream and wrk on core 1 (taskset -c).
// Output: a Markdown report on stdout (progress on stderr). See bench/README.md.
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');

const HELP = `usage: node bench/memory.js [options]

  --variants LIST     comma-separated subset of edge,audit,policy (default all three)
  --runs N            runs per variant, interleaved (default 3)
  --duration N        seconds of load per run (default 20)
  --connections N     wrk connections (default 64)
  --idle N            seconds between the gateway accepting connections and the idle sample (default 3)
  --baseline DIR      another gatehouse checkout, built: every variant also runs from it ("@base")
  --node-flags STR    every variant also runs as \`node STR bin/gatehouse.js ...\` ("+flags"),
                      e.g. "--max-semi-space-size=4" (space-separated; V8 flags allowed)
  --no-pin            do not pin with taskset
  --keep-tmp          keep the temp dir (configs, logs, state)
  --help              this text
`;

function parseArgs(argv) {
  const o = { variants: 'edge,audit,policy', runs: 3, duration: 20, connections: 64, idle: 3, baseline: null, nodeFlags: null, pin: true, keepTmp: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else if (a === '--variants') o.variants = val();
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--duration') o.duration = Number(val());
    else if (a === '--connections') o.connections = Number(val());
    else if (a === '--idle') o.idle = Number(val());
    else if (a === '--baseline') o.baseline = path.resolve(val());
    else if (a === '--node-flags') o.nodeFlags = val().split(/\s+/).filter(Boolean);
    else if (a === '--no-pin') o.pin = false;
    else if (a === '--keep-tmp') o.keepTmp = true;
    else throw new Error(`unknown option ${a}\n${HELP}`);
  }
  for (const k of ['runs', 'duration', 'connections', 'idle']) if (!(Number.isFinite(o[k]) && o[k] >= 0)) throw new Error(`--${k}: not a number`);
  o.variants = o.variants.split(',').map((s) => s.trim()).filter(Boolean);
  for (const v of o.variants) if (!['edge', 'audit', 'policy'].includes(v)) throw new Error(`unknown variant ${v}`);
  if (o.baseline && !fs.existsSync(path.join(o.baseline, 'dist', 'cli', 'main.js'))) throw new Error(`--baseline ${o.baseline}: no dist/cli/main.js (build it first)`);
  return o;
}

const OPTS = parseArgs(process.argv.slice(2));
const progress = (m) => process.stderr.write(`[memory] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || null;
const PIN = OPTS.pin && !!which('taskset') && os.cpus().length >= 2;
const SETPRIV = spawnSync('setpriv', ['--help'], { encoding: 'utf8' }).stdout?.includes('pdeathsig') ? 'setpriv' : null;
const WRK = which('wrk');
if (!WRK) throw new Error('wrk is not on PATH (apt-get install -y wrk)');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// ---- processes -------------------------------------------------------------------------------

const children = new Set();
function wrap(cpu, cmd, args) {
  let full = [cmd, ...args];
  if (PIN) full = ['taskset', '-c', String(cpu), ...full];
  if (SETPRIV) full = [SETPRIV, '--pdeathsig', 'KILL', '--', ...full];
  return full;
}
function start(cpu, cmd, args, { logFile, env = {} }) {
  const full = wrap(cpu, cmd, args);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(full[0], full.slice(1), { cwd: ROOT, env: { ...process.env, NODE_ENV: 'production', ...env }, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const rec = { child, logFile, exited: null };
  child.on('exit', (code, signal) => {
    rec.exited = { code, signal };
    children.delete(rec);
  });
  children.add(rec);
  return rec;
}
async function stop(rec) {
  if (rec.exited) return;
  rec.child.kill('SIGTERM');
  for (let i = 0; i < 60 && !rec.exited; i++) await sleep(50);
  if (!rec.exited) rec.child.kill('SIGKILL');
  for (let i = 0; i < 40 && !rec.exited; i++) await sleep(50);
}
process.on('exit', () => {
  for (const rec of children) rec.child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

/** The pid of the node process itself: with setpriv/taskset wrappers each exec()s, so it is the child's pid. */
const rssMb = (pid) => {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
};
/**
 * Where the RSS is (/proc/PID/smaps), in MB: file-backed mappings (the node binary's pages and
 * libraries), glibc malloc arenas of threads other than the main one (anonymous mappings starting
 * on a 64 MiB boundary, the arenas' heap size: what worker and V8 background threads malloc), and
 * the rest of the anonymous memory (the V8 heap, the main thread's malloc heap, stacks, JIT code).
 * A heuristic, for orientation.
 */
const smapsBreakdown = (pid) => {
  const out = { file: 0, arenas: 0, anon: 0 };
  try {
    let cur = null;
    for (const l of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
      if (m) {
        const start = BigInt(`0x${m[1]}`);
        const size = Number(BigInt(`0x${m[2]}`) - start);
        cur = m[3].startsWith('/') ? 'file' : m[3] === '' && start % (1n << 26n) === 0n && size <= 2 ** 26 ? 'arenas' : 'anon';
      } else if (l.startsWith('Rss:') && cur) out[cur] += Number(l.split(/\s+/)[1]) / 1024;
    }
  } catch {
    return { file: NaN, arenas: NaN, anon: NaN };
  }
  return out;
};
const cpuSeconds = (pid, mainThread = false) => {
  try {
    const s = fs.readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
async function waitForPort(rec, port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (rec.exited) throw new Error(`exited before listening (${JSON.stringify(rec.exited)}):\n${fs.readFileSync(rec.logFile, 'utf8').slice(-2000)}`);
    const ok = await new Promise((r) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${port} after ${ms} ms`);
}
function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

// ---- configs ---------------------------------------------------------------------------------

function config(dir, variant, { port, adminPort, upstreamPort }) {
  const stateDir = path.join(dir, `state-${crypto.randomBytes(4).toString('hex')}`);
  const lines = [
    '# written by bench/memory.js',
    'listen:',
    `  - address: 127.0.0.1:${port}`,
    'admin:',
    `  listen: 127.0.0.1:${adminPort}`,
    'log:',
    '  level: warn',
    ...(process.getuid?.() === 0 ? ['process:', '  serve_as_root: true'] : []),
    'state:',
    `  dir: ${JSON.stringify(stateDir)}`,
  ];
  if (variant !== 'edge') {
    // As bench/run.js's auditLines: async mode, SQLite in state.dir, a checkpoint key.
    const key = path.join(dir, 'audit-k1.key');
    const cpKey = path.join(dir, 'audit-checkpoint.key');
    if (!fs.existsSync(key)) {
      fs.writeFileSync(key, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
      const { privateKey } = crypto.generateKeyPairSync('ed25519');
      fs.writeFileSync(cpKey, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    }
    lines.push('audit:', '  enabled: true', '  keys:', `    - { id: k1, file: ${JSON.stringify(key)} }`, `  checkpoint_key_file: ${JSON.stringify(cpKey)}`);
  }
  lines.push(
    'sites:',
    '  - id: bench',
    '    hosts: ["127.0.0.1", "localhost"]',
    '    upstream:',
    `      urls: ["http://127.0.0.1:${upstreamPort}"]`,
    '    ip_filter:',
    '      allow: ["127.0.0.0/8", "::1"]',
    '    rate_limits:',
    '      - id: general',
    '        limit: 1000000000',
    '        window: 1m',
  );
  if (variant === 'policy') {
    // Anonymous callers (no auth on the site): public-read permits GET, the forbid never applies.
    lines.push('    policy:', `      files: [${JSON.stringify(path.join(ROOT, 'examples', 'policies', 'public.cedar'))}]`);
  }
  const file = path.join(dir, `gatehouse-${variant}-${port}.yaml`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

// ---- one run ---------------------------------------------------------------------------------

function wrk(url, seconds) {
  return new Promise((resolve, reject) => {
    const full = wrap(1, WRK, ['-t1', '-c', String(OPTS.connections), '-d', `${seconds}s`, '--timeout', '5s', url]);
    const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', () => {
      const req = /(\d+) requests in/.exec(out);
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      if (!req || !rps) reject(new Error(`cannot parse wrk output:\n${out}`));
      else resolve({ requests: Number(req[1]), rps: Number(rps[1]), non2xx: non2xx ? Number(non2xx[1]) : 0 });
    });
  });
}

async function heapFromMetrics(adminPort) {
  try {
    const { body } = await get(`http://127.0.0.1:${adminPort}/metrics`);
    const pick = (name) => {
      const m = new RegExp(`^gatehouse_${name}(?:\\{[^}]*\\})? ([\\d.e+]+)$`, 'm').exec(body);
      return m ? Number(m[1]) / 2 ** 20 : NaN;
    };
    return { heapUsed: pick('nodejs_heap_size_used_bytes'), heapTotal: pick('nodejs_heap_size_total_bytes'), external: pick('nodejs_external_memory_bytes') };
  } catch {
    return { heapUsed: NaN, heapTotal: NaN, external: NaN };
  }
}

async function oneRun(dir, job, upstreamPort) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = config(dir, job.variant, { port, adminPort, upstreamPort });
  const bin = path.join(job.root, 'bin', 'gatehouse.js');
  const gw = start(0, process.execPath, [...job.nodeFlags, bin, 'run', '--config', file], { logFile: path.join(dir, `gatehouse-${job.label}.log`) });
  try {
    await waitForPort(gw, port, 30_000);
    const first = await get(`http://127.0.0.1:${port}/`);
    if (first.status !== 200) throw new Error(`${job.label}: GET / answered ${first.status}`);
    await sleep(OPTS.idle * 1000);
    const pid = gw.child.pid;
    const idle = rssMb(pid);
    const samples = [];
    const cpu0 = cpuSeconds(pid);
    const loop0 = cpuSeconds(pid, true);
    const timer = setInterval(() => samples.push(rssMb(pid)), 1000);
    const w = await wrk(`http://127.0.0.1:${port}/`, OPTS.duration);
    clearInterval(timer);
    samples.push(rssMb(pid));
    const cpu = cpuSeconds(pid) - cpu0;
    const loop = cpuSeconds(pid, true) - loop0;
    const heap = await heapFromMetrics(adminPort);
    const where = smapsBreakdown(pid);
    if (gw.exited) throw new Error(`${job.label}: the gateway exited during the run`);
    return { idle, median: median(samples), max: Math.max(...samples), last: samples.at(-1), rps: w.rps, non2xx: w.non2xx, cpuUs: (cpu * 1e6) / w.requests, loopUs: (loop * 1e6) / w.requests, ...heap, fileMb: where.file, arenasMb: where.arenas, anonMb: where.anon };
  } finally {
    await stop(gw);
  }
}

// ---- main ------------------------------------------------------------------------------------

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-memory-'));
const upstreamPort = await freePort();
const upstream = start(1, process.execPath, [path.join(BENCH_DIR, 'upstream.js'), String(upstreamPort)], { logFile: path.join(dir, 'upstream.log') });
await waitForPort(upstream, upstreamPort, 10_000);

const jobs = [];
for (const variant of OPTS.variants) {
  jobs.push({ variant, label: variant, root: ROOT, nodeFlags: [] });
  if (OPTS.nodeFlags) jobs.push({ variant, label: `${variant}+flags`, root: ROOT, nodeFlags: OPTS.nodeFlags });
  if (OPTS.baseline) jobs.push({ variant, label: `${variant}@base`, root: OPTS.baseline, nodeFlags: [] });
}
const results = new Map(jobs.map((j) => [j.label, []]));
const startedAt = new Date();
try {
  for (let r = 0; r < OPTS.runs; r++) {
    for (const job of jobs) {
      const x = await oneRun(dir, job, upstreamPort);
      results.get(job.label).push(x);
      progress(`run ${r + 1}/${OPTS.runs} ${job.label}: idle ${x.idle.toFixed(0)} MB, load median ${x.median.toFixed(0)} max ${x.max.toFixed(0)} MB, heap used ${x.heapUsed.toFixed(0)} MB, ${x.rps.toFixed(0)} req/s, CPU ${x.cpuUs.toFixed(1)} µs/req (event loop ${x.loopUs.toFixed(1)})${x.non2xx ? `, ${x.non2xx} non-2xx` : ''}`);
    }
  }
} finally {
  await stop(upstream);
  if (!OPTS.keepTmp) fs.rmSync(dir, { recursive: true, force: true });
  else progress(`temp dir kept: ${dir}`);
}

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const L = [];
L.push(`# gatehouse memory (${startedAt.toISOString()})`, '');
L.push(`- command: \`node bench/memory.js ${process.argv.slice(2).join(' ')}\``);
L.push(`- ${OPTS.runs} runs per variant, interleaved; ${OPTS.duration} s of \`wrk -t1 -c${OPTS.connections}\` per run; a fresh gateway per run; idle = VmRSS ${OPTS.idle} s after it accepts connections`);
L.push(`- node ${process.version}, ${os.cpus().length} cores, pinning: ${PIN ? 'gateway core 0, upstream + wrk core 1' : 'none'}${OPTS.nodeFlags ? `; +flags = \`node ${OPTS.nodeFlags.join(' ')}\`` : ''}${OPTS.baseline ? `; @base = ${OPTS.baseline}` : ''}`);
L.push('');
L.push('| variant | idle RSS MB | median RSS under load MB | max RSS MB | at end: V8 heap total / used MB | at end: files / thread arenas / other anon MB | req/s | CPU µs/req | event loop µs/req | per-run idle / median / max |');
L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const [label, xs] of results) {
  const m = (k) => median(xs.map((x) => x[k]));
  L.push(`| ${label} | ${f0(m('idle'))} | ${f0(m('median'))} | ${f0(m('max'))} | ${f0(m('heapTotal'))} / ${f0(m('heapUsed'))} | ${f0(m('fileMb'))} / ${f0(m('arenasMb'))} / ${f0(m('anonMb'))} | ${f0(m('rps'))} | ${f1(m('cpuUs'))} | ${f1(m('loopUs'))} | ${xs.map((x) => `${f0(x.idle)}/${f0(x.median)}/${f0(x.max)}`).join(', ')} |`);
}
const bad = [...results].filter(([, xs]) => xs.some((x) => x.non2xx > 0)).map(([l]) => l);
if (bad.length) L.push('', `Non-2xx responses in: ${bad.join(', ')} (those runs are suspect).`);
L.push('', 'All figures are medians over the runs (max RSS: median of the per-run maxima). "At end": read right after the load, from /metrics (V8 heap) and /proc/PID/smaps (files: the node binary and libraries; thread arenas: glibc malloc arenas of threads other than the main one; other anon: the V8 heap, the main malloc heap, stacks, JIT code).');
process.stdout.write(L.join('\n') + '\n');
