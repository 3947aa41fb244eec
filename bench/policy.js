#!/usr/bin/env node
// Cost of the policy stage. NOT a test; it asserts nothing. Needs dist/ (npm run build).
//
//   1. µs per decision: Cedar evaluation through the WASM binding (pre-parsed set, the
//      cache-miss path) vs the stage on a cache hit (key building + LRU lookup).
//   2. Gateway CPU per request, identity pipeline (token, revocation, identity rate limit)
//      without a policy, with a policy, and with a policy but no decision cache, measured on the gateway process (/proc/<pid>/stat) over
//      the same number of proxied requests; runs interleaved, medians reported.
//
// Usage: node bench/policy.js [--n 200000] [--requests 20000] [--runs 3] [--connections 8]
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(ROOT, 'dist', p));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('n', 200_000);
const REQUESTS = arg('requests', 20_000);
const RUNS = arg('runs', 3);
const CONNECTIONS = arg('connections', 8);
const POLICY_FILE = path.join(ROOT, 'examples/policies/domain-isolation.cedar');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const { keyDir, makeKey, sign } = await dist('testing/tokens.js');
const { loadPolicySet } = await dist('stages/policy/policy-set.js');
const { evaluate } = await dist('stages/policy/decide.js');
const { createPolicyStage } = await dist('stages/policy/index.js');
const { PolicyHandle } = await dist('stages/policy/registry.js');
const { createMetrics } = await dist('observability/metrics.js');
const { configSchema } = await dist('config/schema.js');
const { writeConfig, BIN } = await dist('testing/harness.js');

// ---- 1. µs per decision -------------------------------------------------------------
const set = loadPolicySet([POLICY_FILE]);
const resource = { site: 'billing', pathPrefix: '/', upstream: '127.0.0.1:1', zone: 'production', domain: 'billing' };
const identity = { subject: 'agent-1', type: 'agent', role: null, domain: 'billing', agent: 'agent-1', tokenIdHash: null };
const input = { identity, method: 'GET', clientIp: '127.0.0.1', path: '/v1/invoices', hour: 12, weekday: 3, body: null };
for (let k = 0; k < 500; k++) evaluate(set, resource, input); // warm the WASM code
const M = Math.max(1000, Math.floor(N / 50));
let s = performance.now();
for (let k = 0; k < M; k++) evaluate(set, resource, input);
const uncached = ((performance.now() - s) * 1000) / M;

const cfg = configSchema.parse({ sites: [{ id: 'billing', hosts: ['x'], upstream: { urls: ['http://127.0.0.1:1'] }, policy: { files: [POLICY_FILE] } }] });
const metrics = createMetrics({ version: 'bench', defaultMetrics: false });
const handle = new PolicyHandle('billing', '', [POLICY_FILE], cfg.sites[0].policy, null, null, null);
const stage = createPolicyStage({ handle, resource, bodyIdleTimeoutMs: 0, metrics, log: null });
const ex = { id: 'r', req: { method: 'GET', headers: {} }, identity, clientIp: '127.0.0.1', normPath: '/v1/invoices', notes: null, note(k, v) { (this.notes ??= {})[k] = v; } };
if (stage.run(ex) !== undefined) throw new Error('the bench request must be allowed');
s = performance.now();
for (let k = 0; k < N; k++) stage.run(ex);
const cached = ((performance.now() - s) * 1000) / N;
console.log(`decision, uncached (Cedar WASM, pre-parsed set): ${uncached.toFixed(2)} µs   [${M} calls]`);
console.log(`decision, cached (policy stage, cache hit):      ${cached.toFixed(2)} µs   [${N} calls]`);

// ---- 2. gateway CPU per request ----------------------------------------------------
const TICK_US = 1e6 / 100; // CLK_TCK is 100 on Linux
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_US; // utime + stime
};
const upstream = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok));
const upUrl = `http://127.0.0.1:${upstream.address().port}`;
const dir = keyDir();
const key = makeKey(dir, 'k1', 'RS256');
// mode: 'identity' (no policy), 'policy' (decision cache on), 'policy-nocache' (cache_entries: 0).
const base = (mode) => ({
  listen: [{ address: '127.0.0.1:0' }],
  admin: { listen: '127.0.0.1:0' },
  log: { level: 'warn' },
  state: { dir: path.join(dir, `state-${mode}`) },
  auth: { issuers: [{ id: 'm', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
  identities: { unknown_identity: 'allow', default_agent_rpm: 1_000_000_000 },
  sites: [{ id: 'billing', hosts: ['127.0.0.1'], domain: 'billing', upstream: { urls: [upUrl] }, auth: {}, ...(mode === 'identity' ? {} : { policy: { files: [POLICY_FILE], cache_entries: mode === 'policy' ? 10_000 : 0 } }) }],
});
// A handful of agents: steady state (verified-token cache and decision cache warm).
const tokens = [];
for (let k = 0; k < 10; k++) tokens.push(await sign(key, { sub: `agent-${k}`, domain: 'billing', exp: Math.floor(Date.now() / 1000) + 3600 }));

async function load(port, n) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 });
  let next = 0;
  let bad = 0;
  const worker = async () => {
    while (next < n) {
      const k = next++;
      const r = await pool.request({ path: `/v1/invoices/${k % 20}`, method: 'GET', headers: { host: '127.0.0.1', authorization: `Bearer ${tokens[k % tokens.length]}` } });
      await r.body.dump();
      if (r.statusCode !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  await pool.close();
  if (bad > 0) throw new Error(`${bad} requests were not 200`);
}

const freePort = () =>
  new Promise((ok) => {
    const srv = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
// Spawned directly (not through the test harness) so the gateway runs with log.level warn:
// no per-request log line in either configuration, as in bench/run.js.
async function spawnGateway(config) {
  const port = await freePort();
  config.listen = [{ address: `127.0.0.1:${port}` }];
  const child = spawn(process.execPath, [BIN, 'run', '--config', writeConfig(config)], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let k = 0; ; k++) {
    const up = await new Promise((ok) => {
      const c = connect(port, '127.0.0.1', () => {
        c.destroy();
        ok(true);
      }).on('error', () => ok(false));
    });
    if (up) break;
    if (k > 300) throw new Error('gateway did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, stop: () => new Promise((ok) => child.once('exit', ok).kill('SIGTERM')) };
}
const MODES = ['identity', 'policy', 'policy-nocache'];
const gws = {};
for (const m of MODES) gws[m] = await spawnGateway(base(m));
try {
  for (const g of Object.values(gws)) await load(g.port, 2000); // warm-up
  const results = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const name of MODES) {
      const g = gws[name];
      const c0 = cpuUs(g.child.pid);
      await load(g.port, REQUESTS);
      results[name].push((cpuUs(g.child.pid) - c0) / REQUESTS);
    }
  }
  const i = median(results.identity);
  const p = median(results.policy);
  console.log(`gateway CPU per request, identity pipeline:          ${i.toFixed(1)} µs   runs: ${results.identity.map((x) => x.toFixed(1)).join(', ')}`);
  console.log(`gateway CPU per request, identity pipeline + policy: ${p.toFixed(1)} µs   runs: ${results.policy.map((x) => x.toFixed(1)).join(', ')}`);
  const n = median(results['policy-nocache']);
  console.log(`gateway CPU per request, + policy without cache:     ${n.toFixed(1)} µs   runs: ${results['policy-nocache'].map((x) => x.toFixed(1)).join(', ')}`);
  console.log(`policy adds: ${(((p - i) / i) * 100).toFixed(1)} % with the decision cache, ${(((n - i) / i) * 100).toFixed(1)} % without (median of ${RUNS} runs × ${REQUESTS} requests, ${CONNECTIONS} connections)`);
} finally {
  for (const g of Object.values(gws)) await g.stop();
  upstream.close();
}
