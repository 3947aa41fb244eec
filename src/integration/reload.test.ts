/**
 * Config reload on a live gateway: file changes apply within seconds, an invalid file is
 * refused (counted, logged with every problem) while the last good config keeps serving,
 * rate-limit counters survive, in-flight requests finish on the generation they started
 * with, listener changes are refused, and SIGHUP reloads a real `gatehouse run` process.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { baseConfig, request, spawnGateway, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../testing/harness.js';

const T0 = Date.UTC(2030, 0, 1);

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}

/** Polls `url` until `pred` holds for a response; returns that response (or throws). */
async function pollFor(url: string, pred: (r: Reply) => boolean, timeoutMs = 10_000, headers?: Record<string, string>): Promise<Reply> {
  let last: Reply | null = null;
  const ok = await until(async () => {
    last = await request(url, headers ? { headers } : {});
    return pred(last);
  }, timeoutMs);
  assert.ok(ok, `condition not met within ${timeoutMs} ms; last: ${last === null ? 'none' : `${(last as Reply).status} ${JSON.stringify((last as Reply).headers)}`}`);
  return last as unknown as Reply;
}

function metricValue(text: string, series: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return 0;
}

async function failures(gw: TestGateway): Promise<number> {
  const m = await request(`${gw.adminUrl}/metrics`);
  assert.equal(m.status, 200);
  return metricValue(m.body, 'gatehouse_config_reloads_total{result="failure"}');
}

describe('reload', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  async function upstream(handler?: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
    const up = await startUpstream(handler);
    cleanups.push(() => up.close());
    return up;
  }
  async function gateway(config: unknown, opts: { now?: () => number; watch?: boolean } = { watch: true }): Promise<TestGateway> {
    const gw = await startGateway(config, opts);
    cleanups.push(() => gw.close());
    return gw;
  }

  it('(a) applies a rewritten file within a few seconds (new site header)', async () => {
    const up = await upstream();
    const cfg = (v: string) => baseConfig(up.url, { headers: { set: { 'X-Test': v } } });
    const gw = await gateway(cfg('1'));
    assert.equal((await request(`${gw.url}/`)).headers['x-test'], '1');
    gw.write(cfg('2'));
    const r = await pollFor(`${gw.url}/`, (x) => x.headers['x-test'] === '2');
    assert.equal(r.status, 200);
    assert.ok(gw.logs.some((l) => l.event === 'config_reloaded' && l.reason === 'file_change'), 'a config_reloaded line with reason file_change');
  });

  describe('(b) an invalid file', () => {
    let gw: TestGateway;
    let failedBefore = 0;
    const invalid = (url: string) => ({ ...baseConfig(url, { headers: { set: { 'X-Test': '2' } } }), bogus_key: true, ip_filter: { allow: ['10.0.0.0/33'] } });

    it('is refused: the old config keeps serving and the failure is counted', async () => {
      const up = await upstream();
      gw = await gateway(baseConfig(up.url, { headers: { set: { 'X-Test': '1' } } }));
      failedBefore = await failures(gw);
      gw.write(invalid(up.url));
      assert.ok(await until(async () => (await failures(gw)) > failedBefore, 10_000), 'gatehouse_config_reloads_total{result="failure"} increased');
      const r = await request(`${gw.url}/`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-test'], '1', 'still the old config');
      assert.equal(gw.gw.runtime.generation, 1);
      assert.ok(gw.logs.some((l) => l.event === 'config_reload_failed' && l.reason === 'file_change' && l.level === 'error'));
    });

    it('is logged (config_reload_failed) with BOTH problems and their paths', () => {
      const line = gw.logs.find((l) => l.event === 'config_reload_failed');
      assert.ok(line, 'a config_reload_failed line');
      const problems = line.problems as string[];
      assert.ok(Array.isArray(problems));
      assert.ok(
        problems.some((p) => p.startsWith('bogus_key:') && p.includes('unknown key')),
        `unknown key listed: ${JSON.stringify(problems)}`,
      );
      assert.ok(
        problems.some((p) => p.startsWith('ip_filter.allow[0]:') && p.includes('10.0.0.0/33')),
        `bad CIDR listed: ${JSON.stringify(problems)}`,
      );
    });
  });

  it('(c) keeps rate-limit counters across a reload', async () => {
    const up = await upstream();
    const cfg = (v: string) => baseConfig(up.url, { rate_limits: [{ id: 'login', limit: 3, window: '1m', paths: ['/limited'] }], headers: { set: { 'X-Test': v } } });
    const gw = await gateway(cfg('1'), { watch: true, now: () => T0 });
    for (let i = 0; i < 3; i++) {
      const r = await request(`${gw.url}/limited`);
      assert.equal(r.status, 200, `request ${i + 1}`);
      assert.equal(r.headers['ratelimit'], `"login";r=${2 - i};t=60`);
    }
    gw.write(cfg('2'));
    // Poll on a path the rule does not count.
    await pollFor(`${gw.url}/other`, (x) => x.headers['x-test'] === '2');
    assert.equal(gw.gw.runtime.generation, 2);
    const r = await request(`${gw.url}/limited`);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '60');
    assert.equal(r.headers['x-test'], '2', 'answered by the new generation');
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'rate_limited');
    assert.equal(up.seen.filter((s) => s.url === '/limited').length, 3);
  });

  it('(d) finishes an in-flight request on the old config while new requests use the new one', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const waiting: ServerResponse[] = [];
    const upA = await upstream((req, res) => {
      if (req.url === '/hold') {
        waiting.push(res);
        void released.then(() => res.end('A-hold'));
        return;
      }
      res.end('A');
    });
    const upB = await upstream((_req, res) => res.end('B'));
    cleanups.push(async () => release());
    const cfg = (url: string, gen: string) => baseConfig(url, { headers: { set: { 'X-Gen': gen } } });
    const gw = await gateway(cfg(upA.url, 'old'));
    const inflight = request(`${gw.url}/hold`);
    assert.ok(await until(() => waiting.length === 1, 10_000), 'the upstream holds the request');
    gw.write(cfg(upB.url, 'new'));
    const fresh = await pollFor(`${gw.url}/poll`, (x) => x.headers['x-gen'] === 'new');
    assert.equal(fresh.body, 'B');
    release();
    const old = await inflight;
    assert.equal(old.status, 200);
    assert.equal(old.body, 'A-hold');
    assert.equal(old.headers['x-gen'], 'old', 'the in-flight request keeps the header of the generation it started on');
    const after = await request(`${gw.url}/after`);
    assert.equal(after.status, 200);
    assert.equal(after.body, 'B');
    assert.equal(after.headers['x-gen'], 'new');
    assert.equal(upB.seen.filter((s) => s.url === '/after').length, 1);
    assert.equal(upA.seen.filter((s) => s.url === '/after').length, 0);
  });

  it('(e) reload() refuses a listener change with { ok: false } and keeps serving', async () => {
    const up = await upstream();
    const cfg = baseConfig(up.url, { headers: { set: { 'X-Test': '1' } } });
    const gw = await gateway(cfg, { watch: false });
    gw.write({ ...cfg, listen: [{ address: '127.0.0.1:0' }, { address: '127.0.0.1:0' }], sites: [{ id: 'app', hosts: ['127.0.0.1'], upstream: { urls: [up.url] }, headers: { set: { 'X-Test': '2' } } }] });
    const res = await gw.gw.reload();
    assert.equal(res.ok, false);
    assert.equal(res.generation, 1);
    assert.match(res.error ?? '', /listen/);
    assert.equal(await failures(gw), 1);
    const r = await request(`${gw.url}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-test'], '1');
    assert.equal(gw.gw.addresses().public.length, 1);
  });

  it('reloads a running `gatehouse run` process on SIGHUP', async () => {
    const up = await upstream();
    const cfg = (v: string) => baseConfig(up.url, { headers: { set: { 'X-Test': v } } });
    const g = await spawnGateway(cfg('1'));
    cleanups.push(() => g.stop('SIGKILL'));
    const url = `http://127.0.0.1:${g.port}/`;
    assert.equal((await request(url)).headers['x-test'], '1');
    // JSON is YAML.
    writeFileSync(g.file, JSON.stringify(cfg('2')));
    g.child.kill('SIGHUP');
    assert.ok(
      await until(() => /"event":"config_reloaded"[^\n]*"reason":"sighup"/.test(g.output()), 10_000),
      `a config_reloaded line with reason sighup:\n${g.output()}`,
    );
    const r = await request(url);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-test'], '2');
    assert.equal(g.child.exitCode, null, 'SIGHUP did not stop the process');
    assert.equal(await g.stop('SIGTERM'), 0);
  });
});
