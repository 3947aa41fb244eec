#!/usr/bin/env node
// What the LLM route adds. NOT a test; it asserts nothing. Needs dist/ (npm run build).
//
// Two gateways are spawned side by side, in front of the same fake LLM upstream (in this
// process): `identity` — a site with auth (token, revocation, identity rate limit) that
// proxies the calls as plain requests — and `llm` — the same site with an `llm` block
// (grant, per-identity credential file, token budgets on the memory store, usage read
// from every answer). Same tokens, same bodies, rounds interleaved (identity, llm,
// identity, llm, ...), medians over the rounds:
//
//   1. gateway CPU per call (/proc/<pid>/stat of the gateway), plain chat calls (JSON
//      answer with usage) and streamed ones (SSE, 20 chunks, usage chunk asked for by
//      the gateway and taken out of the stream);
//   2. time to first byte of a streamed call at the client (request sent → first body
//      byte), one call at a time, p50 and p99 per round;
//   0. first, in this process, the CPU time (process.cpuUsage, robust to a busy machine)
//      of the llm stage's own work per call: one reading of the body, the request checks
//      and rewrite, a memory-store reservation and settlement, and reading usage out of
//      the answer (JSON, and a 22-event stream in strip mode).
//
// Usage: node bench/llm.js [--rounds 5] [--requests 4000] [--ttfb 400] [--connections 8]
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
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
const ROUNDS = arg('rounds', 5);
const REQUESTS = arg('requests', 4000);
const TTFB_CALLS = arg('ttfb', 400);
const CONNECTIONS = arg('connections', 8);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

const { keyDir, makeKey, sign } = await dist('testing/tokens.js');
const { writeConfig, BIN } = await dist('testing/harness.js');

// ---- 0. the llm stage's own work, in process -------------------------------------------
{
  const { parseJsonObject } = await dist('http/json-body.js');
  const { DECIDED_FIELDS, endpointFor } = await dist('stages/llm/endpoints.js');
  const { checkRequest } = await dist('stages/llm/request.js');
  const { UsageReader } = await dist('stages/llm/usage.js');
  const { createMemoryTokenBudgetStore } = await dist('stores/token-budget/memory.js');
  const ep = endpointFor('openai', '/v1/chat/completions');
  const models = new Map([['gpt-bench', { name: 'gpt-bench', upstream: 'gpt-bench', maxOutputTokens: null }]]);
  const opts = { models, grant: { allowsModel: () => true, maxOutputTokens: 256, maxN: 1, tools: true }, overMaxTokens: 'clamp' };
  const store = createMemoryTokenBudgetStore({ sweepIntervalMs: 0 });
  const plain = Buffer.from(JSON.stringify({ model: 'gpt-bench', max_tokens: 100, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }] }));
  const streamed = Buffer.from(JSON.stringify({ model: 'gpt-bench', max_tokens: 100, stream: true, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }] }));
  const b = { id: 'chatcmpl-b', object: 'chat.completion.chunk', created: 1, model: 'gpt-bench', system_fingerprint: 'fp' };
  const events = [`data: ${JSON.stringify({ ...b, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], usage: null })}\n\n`];
  for (let i = 0; i < 20; i++) events.push(`data: ${JSON.stringify({ ...b, choices: [{ index: 0, delta: { content: ` w${i}` }, finish_reason: null }], usage: null })}\n\n`);
  events.push(`data: ${JSON.stringify({ ...b, choices: [], usage: { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 } })}\n\n`, 'data: [DONE]\n\n');
  const sse = events.map((e) => Buffer.from(e));
  const json = Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there, this is a short answer.' } }], usage: { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 } }));
  const budgets = (k) => [{ key: `m:${k % 10}`, limit: 1e12, windowMs: 60_000 }, { key: `d:${k % 10}`, limit: 1e12, windowMs: 86_400_000 }];
  const call = (k, body, answer) => {
    const p = parseJsonObject(body, DECIDED_FIELDS);
    const v = checkRequest(ep, p.value, body, opts);
    const now = 1_700_000_000_000 + k;
    store.reserve(budgets(k), `r.${k}`, 200, 600_000, now);
    const r = new UsageReader('chat', answer === json ? 'json' : 'sse', v.stripUsage);
    if (answer === json) r.feed(json);
    else for (const c of sse) r.feed(c);
    r.end();
    store.settle(budgets(k), `r.${k}`, r.usage.total, 600_000, now + 1);
  };
  const N0 = 20_000;
  for (let k = 0; k < 5000; k++) call(k, k % 2 ? plain : streamed, k % 2 ? json : sse);
  for (const [name, body, answer] of [['plain', plain, json], ['streamed', streamed, sse]]) {
    const runs = [];
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let k = 0; k < N0; k++) call(k, body, answer);
      const c = process.cpuUsage(c0);
      runs.push((c.user + c.system) / N0);
    }
    console.log(`llm stage work per ${name} call, in process: ${median(runs).toFixed(2)} µs CPU   rounds: ${runs.map((x) => x.toFixed(2)).join(', ')}`);
  }
  await store.close();
}

// ---- the fake LLM upstream ----------------------------------------------------------
const USAGE = { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 };
const base = { id: 'chatcmpl-b', object: 'chat.completion.chunk', created: 1, model: 'gpt-bench', system_fingerprint: 'fp' };
const upstream = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const b = JSON.parse(Buffer.concat(chunks).toString());
    if (b.stream !== true) {
      const text = JSON.stringify({ id: 'chatcmpl-b', object: 'chat.completion', created: 1, model: b.model, choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there, this is a short answer.' }, finish_reason: 'stop' }], usage: USAGE });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    const withUsage = b.stream_options?.include_usage === true;
    const u = withUsage ? { usage: null } : {};
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // The first token goes out at once: that is what time to first byte measures.
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], ...u })}\n\n`);
    let i = 0;
    const next = () => {
      if (i < 20) {
        res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: ` w${i}` }, finish_reason: null }], ...u })}\n\n`);
        i++;
        setImmediate(next);
        return;
      }
      if (withUsage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: USAGE })}\n\n`);
      res.end('data: [DONE]\n\n');
    };
    setImmediate(next);
  });
});
await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok));
const upUrl = `http://127.0.0.1:${upstream.address().port}`;

// ---- two gateways ------------------------------------------------------------------
const dir = keyDir();
const key = makeKey(dir, 'k1', 'RS256');
const credFile = path.join(dir, 'llm.key');
writeFileSync(credFile, 'sk-bench-credential\n', { mode: 0o600 });
const config = (mode) => ({
  listen: [{ address: '127.0.0.1:0' }],
  admin: { listen: '127.0.0.1:0' },
  log: { level: 'warn' },
  // Benchmarks run as root on CI machines: gatehouse refuses that unless told (docs/deploy.md).
  ...(process.getuid?.() === 0 ? { process: { serve_as_root: true } } : {}),
  state: { dir: path.join(dir, `state-${mode}`) },
  auth: { issuers: [{ id: 'm', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: 'k1', file: key.file }] }] },
  identities: { unknown_identity: 'allow', default_agent_rpm: 1_000_000_000 },
  sites: [
    {
      id: 'llm',
      hosts: ['127.0.0.1'],
      upstream: { urls: [upUrl] },
      auth: {},
      ...(mode === 'llm'
        ? {
            llm: {
              models: { 'gpt-bench': {} },
              grants: [{ id: 'agents', match: { types: ['agent'] }, models: ['gpt-bench'], tokens_per_minute: 1e12, tokens_per_day: 1e12, max_output_tokens: 256 }],
              credentials: { domains: { bench: credFile } },
            },
          }
        : {}),
    },
  ],
});
const tokens = [];
for (let k = 0; k < 10; k++) tokens.push(await sign(key, { sub: `agent-${k}`, domain: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 }));
// Same bytes to both gateways; max_tokens under the cap, so the llm gateway forwards
// plain calls intact and rewrites streamed ones only to ask for usage.
const PLAIN = JSON.stringify({ model: 'gpt-bench', max_tokens: 100, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }] });
const STREAMED = JSON.stringify({ model: 'gpt-bench', max_tokens: 100, stream: true, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }] });

const TICK_US = 1e6 / 100; // CLK_TCK is 100 on Linux
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_US;
};
const freePort = () =>
  new Promise((ok) => {
    const srv = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
async function spawnGateway(cfg) {
  const port = await freePort();
  cfg.listen = [{ address: `127.0.0.1:${port}` }];
  const child = spawn(process.execPath, [BIN, 'run', '--config', writeConfig(cfg)], { stdio: ['ignore', 'ignore', 'inherit'] });
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
  return { child, port, pool: new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS, pipelining: 1 }), stop: () => new Promise((ok) => child.once('exit', ok).kill('SIGTERM')) };
}

const headers = (k) => ({ host: '127.0.0.1', authorization: `Bearer ${tokens[k % tokens.length]}`, 'content-type': 'application/json' });

async function load(g, n, body) {
  let next = 0;
  let bad = 0;
  const worker = async () => {
    while (next < n) {
      const k = next++;
      const r = await g.pool.request({ path: '/v1/chat/completions', method: 'POST', headers: headers(k), body });
      await r.body.dump();
      if (r.statusCode !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  if (bad > 0) throw new Error(`${bad} calls were not 200`);
}

/** One streamed call at a time: ms from sending to the first body byte. */
async function ttfb(g, n) {
  const out = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    const r = await g.pool.request({ path: '/v1/chat/completions', method: 'POST', headers: headers(k), body: STREAMED });
    let first = -1;
    for await (const _ of r.body) {
      if (first < 0) first = performance.now() - t0;
    }
    if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
    out.push(first);
  }
  return out;
}

const MODES = ['identity', 'llm'];
const gws = {};
for (const m of MODES) gws[m] = await spawnGateway(config(m));
const load0 = loadavg();
try {
  for (const m of MODES) {
    await load(gws[m], 2000, PLAIN); // warm-up: token cache, JIT
    await load(gws[m], 500, STREAMED);
    await ttfb(gws[m], 100);
  }
  const cpu = { plain: { identity: [], llm: [] }, streamed: { identity: [], llm: [] } };
  const t = { identity: [], llm: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const m of MODES) {
      const g = gws[m];
      let c0 = cpuUs(g.child.pid);
      await load(g, REQUESTS, PLAIN);
      cpu.plain[m].push((cpuUs(g.child.pid) - c0) / REQUESTS);
      c0 = cpuUs(g.child.pid);
      await load(g, Math.floor(REQUESTS / 4), STREAMED);
      cpu.streamed[m].push((cpuUs(g.child.pid) - c0) / Math.floor(REQUESTS / 4));
      const samples = await ttfb(g, TTFB_CALLS);
      t[m].push({ p50: pct(samples, 50), p99: pct(samples, 99) });
    }
  }
  const f = (xs) => xs.map((x) => x.toFixed(1)).join(', ');
  const g3 = (xs) => xs.map((x) => x.toFixed(3)).join(', ');
  console.log(`load average before: ${load0.map((x) => x.toFixed(2)).join(' ')}, after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`${ROUNDS} rounds interleaved; CPU: ${REQUESTS} plain + ${Math.floor(REQUESTS / 4)} streamed calls per round and gateway (${CONNECTIONS} connections); TTFB: ${TTFB_CALLS} streamed calls one at a time`);
  for (const kind of ['plain', 'streamed']) {
    const i = median(cpu[kind].identity);
    const l = median(cpu[kind].llm);
    console.log(`gateway CPU per ${kind} call, identity pipeline: ${i.toFixed(1)} µs   rounds: ${f(cpu[kind].identity)}`);
    console.log(`gateway CPU per ${kind} call, + llm stage:       ${l.toFixed(1)} µs   rounds: ${f(cpu[kind].llm)}`);
    console.log(`  llm adds ${(l - i).toFixed(1)} µs per ${kind} call (${(((l - i) / i) * 100).toFixed(1)} %)`);
  }
  for (const q of ['p50', 'p99']) {
    const i = t.identity.map((x) => x[q]);
    const l = t.llm.map((x) => x[q]);
    const d = t.llm.map((x, k) => x[q] - t.identity[k][q]);
    console.log(`TTFB ${q}, identity pipeline: ${median(i).toFixed(3)} ms   rounds: ${g3(i)}`);
    console.log(`TTFB ${q}, + llm stage:       ${median(l).toFixed(3)} ms   rounds: ${g3(l)}`);
    console.log(`  llm adds ${median(d).toFixed(3)} ms at ${q} (median of per-round differences: ${g3(d)})`);
  }
} finally {
  for (const g of Object.values(gws)) {
    await g.pool.close();
    await g.stop();
  }
  upstream.close();
}
