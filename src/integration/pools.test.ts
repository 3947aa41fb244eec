/**
 * Upstream pools against real upstreams on loopback: a member that is down, one that
 * flaps, all down; retries never repeating a non-idempotent request whose body was sent;
 * active health checks taking a real upstream process out and back in; how weights and
 * hashing spread requests (docs/configuration.md#upstream-pools).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { baseConfig, request, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';

/** A loopback port nothing listens on (connection refused). */
async function deadPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/** An upstream in its own process on `port`, answering 200 with its name; `/healthz` 200. */
async function upstreamProcess(port: number, name: string): Promise<ChildProcess> {
  const code = `require('node:http').createServer((q, s) => { s.writeHead(200, { 'content-type': 'text/plain' }); s.end(${JSON.stringify(name)}); }).listen(${port}, '127.0.0.1', () => process.stdout.write('up\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout as NodeJS.ReadableStream, 'data');
  return child;
}

async function killProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

function named(name: string): Promise<Upstream> {
  return startUpstream((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(name);
    });
  });
}

async function metric(gw: TestGateway, re: RegExp): Promise<number> {
  const text = (await request(`${gw.adminUrl}/metrics`)).body;
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

function pool(urls: unknown[], upstream: Record<string, unknown> = {}): Record<string, unknown> {
  return { upstream: { urls, connect_timeout: '1s', ...upstream } };
}

describe('upstream pools: failures', () => {
  const closing: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of closing.reverse()) await c();
  });

  it('one member down: no client sees a 502 (connect failures are retried on the other), the dead one is ejected', async () => {
    const a = await named('a');
    const dead = await deadPort();
    const gw = await startGateway(baseConfig(a.url, pool([a.url, { url: `http://127.0.0.1:${dead}`, id: 'dead' }])));
    closing.push(() => a.close(), () => gw.close());
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await request(`${gw.url}/x${i}`)).status);
    assert.deepEqual(new Set(statuses), new Set([200]), `statuses: ${statuses.join(' ')}`);
    assert.equal(a.seen.length, 40);
    assert.equal(await metric(gw, /gatehouse_upstream_ejections_total\{site="app",upstream="dead"\} (\d+)/), 1);
    assert.equal(await metric(gw, /gatehouse_upstream_healthy\{site="app",upstream="dead"\} (\d+)/), 0);
    assert.equal(await metric(gw, /gatehouse_upstream_failures_total\{site="app",upstream="dead",reason="connect_failure"\} (\d+)/), 5, 'ejected after passive.failures (5)');
    assert.equal(await metric(gw, /gatehouse_upstream_retries_total\{site="app",result="retried"\} (\d+)/), 5);
    const ev = gw.logs.find((l) => l.event === 'upstream_unhealthy');
    assert.ok(ev, 'an upstream_unhealthy event');
    assert.equal(ev.level, 'warn');
    assert.equal(ev.upstream, 'dead');
    assert.equal(ev.source, 'passive');
    assert.equal(ev.reason, 'connect_failure');
    const retriedLine = gw.logs.find((l) => l.msg === 'request' && l.retries === 1);
    assert.equal(retriedLine?.upstream, `127-0-0-1-${a.port}`, 'the request line names the member that answered (default id from host and port)');
  });

  it('one member flapping (stops and starts listening, drops its connections): every request answered 200', async () => {
    const a = await named('a');
    const b = await named('b');
    const gw = await startGateway(baseConfig(a.url, pool([a.url, b.url], { health: { passive: { failures: 3, backoff: '200ms', max_backoff: '1s' } } })));
    closing.push(() => a.close(), () => gw.close());
    let stop = false;
    const flap = (async () => {
      while (!stop) {
        await sleep(60);
        b.server.closeAllConnections();
        await new Promise<void>((ok) => b.server.close(() => ok()));
        await sleep(60);
        await new Promise<void>((ok) => b.server.listen(b.port, '127.0.0.1', ok));
      }
    })();
    const statuses: number[] = [];
    for (let i = 0; i < 80; i++) statuses.push((await request(`${gw.url}/f${i}`)).status);
    stop = true;
    await flap;
    await b.close();
    assert.deepEqual(new Set(statuses), new Set([200]), `statuses: ${statuses.join(' ')}`);
    assert.ok(a.seen.length >= 40, 'the steady member took at least its share');
  });

  it('all members down: 502 while they are tried, then 503 no_healthy_upstream without connecting', async () => {
    const p1 = await deadPort();
    const p2 = await deadPort();
    const gw = await startGateway(
      baseConfig('http://127.0.0.1:1', pool([`http://127.0.0.1:${p1}`, `http://127.0.0.1:${p2}`], { health: { passive: { failures: 2, backoff: '1m' } } })),
    );
    closing.push(() => gw.close());
    const first = await request(`${gw.url}/`);
    assert.equal(first.status, 502);
    assert.match(first.body, /upstream_unavailable/);
    await request(`${gw.url}/`);
    const r = await request(`${gw.url}/`);
    assert.equal(r.status, 503);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'no_healthy_upstream');
    assert.equal(r.headers['x-frame-options'], 'SAMEORIGIN', 'the refusal carries the security headers');
    const line = gw.logs.find((l) => l.code === 'no_healthy_upstream');
    assert.equal(line?.stage, 'proxy');
    assert.equal(gw.logs.filter((l) => l.event === 'upstream_unhealthy').length, 2);
  });

  it('a non-idempotent request whose body was sent is never repeated; an idempotent one is, and a POST that never connected is too', async () => {
    let resets = 0;
    const resetter = await startUpstream((req) => {
      // Reads the whole request (it may have acted on it), then drops the connection.
      req.resume();
      req.on('end', () => {
        resets++;
        req.socket.destroy();
      });
    });
    const refuser = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(503, { connection: 'close' });
      res.end('busy');
    });
    const good = await named('good');
    const dead = await deadPort();
    closing.push(() => resetter.close(), () => refuser.close(), () => good.close());
    const on = ['connect_failure', 'reset_before_response', 'status_502', 'status_503', 'status_504'];
    const gw = await startGateway(
      baseConfig(good.url, {}, {
        sites: [
          // The weights make every first attempt meet the bad member.
          { id: 'reset', hosts: ['reset.test'], ...pool([{ url: resetter.url, id: 'resetter', weight: 1000 }, { url: good.url, id: 'good' }], { retry: { on } }) },
          { id: 'busy', hosts: ['busy.test'], ...pool([{ url: refuser.url, id: 'refuser', weight: 1000 }, { url: good.url, id: 'good' }], { retry: { on } }) },
          { id: 'dead', hosts: ['dead.test'], ...pool([{ url: `http://127.0.0.1:${dead}`, id: 'dead', weight: 1000 }, { url: good.url, id: 'good' }], { retry: { on } }) },
        ],
      }),
    );
    closing.push(() => gw.close());
    const post = await request(`${gw.url}/order`, { method: 'POST', headers: { host: 'reset.test', 'content-type': 'text/plain' }, body: 'buy 1' });
    assert.equal(post.status, 502, 'the reset is the answer');
    assert.equal(resets, 1, 'the upstream got the POST once');
    assert.equal(good.seen.filter((s) => s.method === 'POST').length, 0, 'and no other member got it');

    const busy = await request(`${gw.url}/order`, { method: 'POST', headers: { host: 'busy.test', 'content-type': 'text/plain' }, body: 'buy 2' });
    assert.equal(busy.status, 503, "the member's 503 is passed on");
    assert.equal(refuser.seen.length, 1);
    assert.equal(good.seen.filter((s) => s.method === 'POST').length, 0);

    const get = await request(`${gw.url}/item`, { headers: { host: 'reset.test' } });
    assert.equal(get.status, 200, 'the GET was retried on the other member');
    assert.equal(get.body, 'good');

    const del = await request(`${gw.url}/item`, { method: 'DELETE', headers: { host: 'busy.test' } });
    assert.equal(del.status, 200, 'an idempotent DELETE answered 503 goes to the other member');
    assert.equal(refuser.seen.length, 2);

    const posted = await request(`${gw.url}/order`, { method: 'POST', headers: { host: 'dead.test', 'content-type': 'text/plain' }, body: 'buy 3' });
    assert.equal(posted.status, 200, 'nothing reached the dead member: the POST goes to another');
    assert.equal(good.seen.filter((s) => s.method === 'POST').length, 1);
  });

  it('the retry budget bounds retries: with budget_min 0 and ratio 0 nothing is retried', async () => {
    const a = await named('a');
    const dead = await deadPort();
    const gw = await startGateway(baseConfig(a.url, pool([`http://127.0.0.1:${dead}`, a.url], { retry: { budget_ratio: 0, budget_min: 0 } })));
    closing.push(() => a.close(), () => gw.close());
    const r = await request(`${gw.url}/`);
    assert.equal(r.status, 502);
    assert.equal(await metric(gw, /gatehouse_upstream_retries_total\{site="app",result="budget_exhausted"\} (\d+)/), 1);
  });
});

describe('upstream pools: active health checks with real upstream processes', () => {
  it('a stopped process is taken out after unhealthy_threshold failed checks and back after healthy_threshold passing ones', async () => {
    const pa = await deadPort();
    const pb = await deadPort();
    let a = await upstreamProcess(pa, 'a');
    const b = await upstreamProcess(pb, 'b');
    const gw = await startGateway(
      baseConfig('http://127.0.0.1:1', pool([{ url: `http://127.0.0.1:${pa}`, id: 'a' }, { url: `http://127.0.0.1:${pb}`, id: 'b' }], {
        // Generous timing: a loaded machine must not fail the healthy member's checks.
        health: { active: { path: '/healthz', interval: '1s', timeout: '900ms', unhealthy_threshold: 2, healthy_threshold: 2 } },
      })),
    );
    try {
      await killProcess(a);
      const waitEvent = async (event: string) => {
        for (let i = 0; i < 400 && !gw.logs.some((l) => l.event === event && l.upstream === 'a'); i++) await sleep(50);
        const l = gw.logs.find((x) => x.event === event && x.upstream === 'a');
        assert.ok(l, `event ${event}`);
        return l;
      };
      const down = await waitEvent('upstream_unhealthy');
      assert.equal(down.source, 'active');
      assert.equal(down.reason, 'connect_failure');
      assert.equal(await metric(gw, /gatehouse_upstream_healthy\{site="app",upstream="a"\} (\d+)/), 0);
      const bodies: string[] = [];
      for (let i = 0; i < 6; i++) bodies.push((await request(`${gw.url}/`)).body);
      assert.deepEqual(new Set(bodies), new Set(['b']), 'the unhealthy member gets no traffic');
      assert.equal(await metric(gw, /gatehouse_upstream_failures_total\{site="app",upstream="a",reason="connect_failure"\} (\d+)/), 0, 'no request was sent to it');

      a = await upstreamProcess(pa, 'a');
      const up = await waitEvent('upstream_healthy');
      assert.equal(up.level, 'info');
      assert.equal(up.source, 'active');
      const back: string[] = [];
      for (let i = 0; i < 6; i++) back.push((await request(`${gw.url}/`)).body);
      assert.deepEqual(new Set(back), new Set(['a', 'b']), 'traffic returns to it');
    } finally {
      await gw.close();
      await killProcess(a);
      await killProcess(b);
    }
  });
});

describe('upstream pools: balancing', () => {
  const ups: Upstream[] = [];
  after(async () => {
    for (const u of ups) await u.close();
  });

  it('round_robin follows the weights exactly (3:1), interleaved', async () => {
    const a = await named('a');
    const b = await named('b');
    ups.push(a, b);
    const gw = await startGateway(baseConfig(a.url, pool([{ url: a.url, weight: 3 }, { url: b.url, weight: 1 }])));
    try {
      const seq: string[] = [];
      for (let i = 0; i < 40; i++) seq.push((await request(`${gw.url}/`)).body);
      assert.equal(seq.filter((s) => s === 'a').length, 30);
      assert.equal(seq.filter((s) => s === 'b').length, 10);
      assert.deepEqual(seq.slice(0, 4).sort(), ['a', 'a', 'a', 'b'], 'every run of four holds one b');
    } finally {
      await gw.close();
    }
  });

  it('least_requests sends to the member with fewer requests in flight', async () => {
    const held: Array<() => void> = [];
    const slow = await startUpstream((req, res) => {
      held.push(() => res.end('slow'));
    });
    const fast = await named('fast');
    ups.push(slow, fast);
    const gw = await startGateway(baseConfig(fast.url, pool([{ url: slow.url, id: 'slow' }, { url: fast.url, id: 'fast' }], { balance: 'least_requests' })));
    try {
      const pending = request(`${gw.url}/hold`);
      for (let i = 0; i < 50 && held.length === 0; i++) await sleep(10);
      assert.equal(held.length, 1, 'the first request is held by the slow member');
      const bodies: string[] = [];
      for (let i = 0; i < 10; i++) bodies.push((await request(`${gw.url}/`)).body);
      assert.deepEqual(new Set(bodies), new Set(['fast']), 'while it holds one, the other takes every request');
      held.forEach((f) => f());
      assert.equal((await pending).body, 'slow');
    } finally {
      await gw.close();
    }
  });

  it('hash on a header: a key keeps its member, keys spread by weight, and only the keys of a member that leaves move', async () => {
    const a = await named('a');
    const b = await named('b');
    const c = await named('c');
    ups.push(a, b, c);
    const cfg = (urls: string[]) => baseConfig(a.url, pool(urls.map((url) => ({ url, id: url === a.url ? 'a' : url === b.url ? 'b' : 'c' })), { balance: 'hash', hash_on: 'header:X-Session' }));
    const gw = await startGateway(cfg([a.url, b.url, c.url]), { watch: false });
    try {
      const owner = new Map<string, string>();
      for (let i = 0; i < 300; i++) owner.set(`s${i}`, (await request(`${gw.url}/`, { headers: { 'x-session': `s${i}` } })).body);
      const count = (m: string) => [...owner.values()].filter((v) => v === m).length;
      for (const m of ['a', 'b', 'c']) assert.ok(count(m) > 60 && count(m) < 140, `${m} got ${count(m)} of 300 keys`);
      for (let i = 0; i < 20; i++) assert.equal((await request(`${gw.url}/`, { headers: { 'x-session': 's7' } })).body, owner.get('s7'), 'sticky');
      // c leaves the pool (reload without it): only c's keys move.
      gw.write(cfg([a.url, b.url]));
      await gw.gw.reload('test');
      let moved = 0;
      for (const [key, was] of owner) {
        const now = (await request(`${gw.url}/`, { headers: { 'x-session': key } })).body;
        if (was !== 'c') assert.equal(now, was, `key ${key} stayed on ${was}`);
        else moved++;
      }
      assert.equal(moved, count('c'));
    } finally {
      await gw.close();
    }
  });

  it('hash on the client IP: one client keeps its member', async () => {
    const a = await named('a');
    const b = await named('b');
    ups.push(a, b);
    const gw = await startGateway(baseConfig(a.url, pool([a.url, b.url], { balance: 'hash' })));
    try {
      const bodies = new Set<string>();
      for (let i = 0; i < 20; i++) bodies.add((await request(`${gw.url}/`)).body);
      assert.equal(bodies.size, 1);
    } finally {
      await gw.close();
    }
  });
});
