/**
 * The admin listener: Prometheus metrics that move with real traffic (requests, IP-filter
 * denials, rate-limit refusals, reloads, latency), health and readiness, loopback binding
 * by default — and none of it reachable through the public listener, where the same paths
 * are ordinary requests proxied to the upstream.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../config/load.js';
import { baseConfig, rawExchange, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { tryConnect } from '../testing/assert.js';

const T0 = Date.UTC(2030, 0, 1);

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses Prometheus text exposition (sample lines only). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

describe('admin listener', () => {
  let up: Upstream;
  let gw: TestGateway;
  const metrics = async () => {
    const r = await request(`${gw.adminUrl}/metrics`);
    assert.equal(r.status, 200);
    return { reply: r, samples: parseMetrics(r.body) };
  };

  before(async () => {
    up = await startUpstream();
    gw = await startGateway(
      baseConfig(up.url, {}, {
        sites: [
          { id: 'app', hosts: ['127.0.0.1', 'localhost'], upstream: { urls: [up.url] }, rate_limits: [{ id: 'burst', limit: 1, window: '1m', paths: ['/limited'] }] },
          { id: 'private', hosts: ['private.test'], upstream: { urls: [up.url] }, ip_filter: { allow: ['10.0.0.0/8'] } },
        ],
      }),
      { now: () => T0 },
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  it('/healthz and /readyz answer 200', async () => {
    const h = await request(`${gw.adminUrl}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(JSON.parse(h.body), { status: 'ok' });
    const r = await request(`${gw.adminUrl}/readyz`);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ready' });
  });

  it('/metrics counts requests by site and status, with the latency histogram', async () => {
    const before = value((await metrics()).samples, 'gatehouse_http_requests_total', { site: 'app', status: '200' }) ?? 0;
    const countBefore = value((await metrics()).samples, 'gatehouse_http_request_duration_seconds_count', { site: 'app' }) ?? 0;
    assert.equal((await request(`${gw.url}/hello`)).status, 200);
    const { reply, samples } = await metrics();
    assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.equal(value(samples, 'gatehouse_http_requests_total', { site: 'app', status: '200' }), before + 1);
    // Histogram: every bucket, the +Inf bucket equal to the count, and a sum.
    const count = value(samples, 'gatehouse_http_request_duration_seconds_count', { site: 'app' });
    assert.equal(count, countBefore + 1);
    assert.equal(value(samples, 'gatehouse_http_request_duration_seconds_bucket', { site: 'app', le: '+Inf' }), count);
    const buckets = samples.filter((s) => s.name === 'gatehouse_http_request_duration_seconds_bucket' && s.labels.site === 'app');
    assert.ok(buckets.length >= 10, `buckets: ${buckets.length}`);
    for (let i = 1; i < buckets.length; i++) assert.ok((buckets[i] as Sample).value >= (buckets[i - 1] as Sample).value, 'cumulative buckets');
    const sum = value(samples, 'gatehouse_http_request_duration_seconds_sum', { site: 'app' });
    assert.ok(sum !== undefined && sum > 0);
    assert.match(reply.body, /^# TYPE gatehouse_http_request_duration_seconds histogram$/m);
  });

  it('/metrics counts IP-filter denials', async () => {
    const r = await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: private.test\r\n\r\n', 5000);
    assert.equal(r.closed, true);
    assert.equal(r.bytes.length, 0, 'the denied client got zero bytes');
    const { samples, reply } = await metrics();
    assert.match(reply.body, /^# TYPE gatehouse_ip_filter_denials_total counter$/m);
    assert.equal(value(samples, 'gatehouse_ip_filter_denials_total', { site: 'private', list: 'allow' }), 1);
    assert.equal(value(samples, 'gatehouse_http_requests_total', { site: 'private', status: '0' }), 1);
  });

  it('/metrics counts rate-limit refusals', async () => {
    assert.equal((await request(`${gw.url}/limited`)).status, 200);
    const refused = await request(`${gw.url}/limited`);
    assert.equal(refused.status, 429);
    const { samples, reply } = await metrics();
    assert.match(reply.body, /^# TYPE gatehouse_rate_limit_refusals_total counter$/m);
    assert.equal(value(samples, 'gatehouse_rate_limit_refusals_total', { site: 'app', rule: 'burst', mode: 'enforce' }), 1);
    assert.equal(value(samples, 'gatehouse_http_requests_total', { site: 'app', status: '429' }), 1);
  });

  it('/metrics counts config reloads', async () => {
    const before = value((await metrics()).samples, 'gatehouse_config_reloads_total', { result: 'success' }) ?? 0;
    const res = await gw.gw.reload();
    assert.equal(res.ok, true);
    const { samples, reply } = await metrics();
    assert.match(reply.body, /^# TYPE gatehouse_config_reloads_total counter$/m);
    assert.equal(value(samples, 'gatehouse_config_reloads_total', { result: 'success' }), before + 1);
    assert.equal(value(samples, 'gatehouse_config_reloads_total', { result: 'failure' }) ?? 0, 0);
  });

  it('binds the admin listener to 127.0.0.1 by default', async (t) => {
    const { config } = parseConfig('sites:\n  - id: app\n    hosts: [example.com]\n    upstream: { urls: ["http://127.0.0.1:1"] }\n', '/nonexistent/gatehouse.yaml');
    assert.equal(config.admin.enabled, true);
    assert.equal(config.admin.listen, '127.0.0.1:9090');
    const admin = gw.gw.addresses().admin;
    assert.ok(admin);
    assert.equal(admin.address, '127.0.0.1');
    // Not reachable on any other address of this machine.
    const external = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
      .map((i) => (i as { address: string }).address);
    if (external.length === 0) t.diagnostic('no non-loopback IPv4 interface: reachability check skipped');
    for (const ip of external) assert.equal(await tryConnect(admin.port, ip), 'ECONNREFUSED', `admin port on ${ip}`);
  });

  it('proxies /metrics and /healthz on the PUBLIC listener to the upstream (never gatehouse’s own)', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      const seenBefore = up.seen.filter((s) => s.url === path).length;
      const r = await request(`${gw.url}${path}`);
      assert.equal(r.status, 200);
      assert.equal(up.seen.filter((s) => s.url === path).length, seenBefore + 1, `the upstream saw ${path}`);
      const body = JSON.parse(r.body) as { url: string; method: string };
      assert.equal(body.url, path, 'the body is the upstream’s echo');
      assert.equal(body.method, 'GET');
      assert.doesNotMatch(r.body, /gatehouse_/);
      assert.equal(r.headers['content-type'], 'application/json');
    }
  });
});
