/**
 * Graceful shutdown of a real `gatehouse run` process: SIGTERM while a request is in
 * flight stops accepting new connections at once, lets the in-flight request finish with
 * its real answer, then exits 0; afterwards nothing listens on the port.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { baseConfig, request, spawnGateway, startUpstream, type Upstream } from '../testing/harness.js';
import { tryConnect, until } from '../testing/assert.js';

type Spawned = Awaited<ReturnType<typeof spawnGateway>>;

async function untilAsync(cond: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}

describe('shutdown', () => {
  let up: Upstream | undefined;
  let g: Spawned | undefined;
  after(async () => {
    if (g && g.child.exitCode === null && g.child.signalCode === null) await g.stop('SIGKILL');
    await up?.close();
  });

  it('SIGTERM drains: the in-flight request completes 200, new connections are refused, the process exits 0', async () => {
    const holding: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    up = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        holding.push(req.url);
        // At least ~1 s, and until the test has seen the gateway draining (bounded).
        const minimum = new Promise((r) => setTimeout(r, 1000));
        const cap = new Promise((r) => setTimeout(r, 15_000).unref());
        void Promise.race([Promise.all([minimum, released]), cap]).then(() => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('finished');
        });
        return;
      }
      res.end('ok');
    });
    g = await spawnGateway(baseConfig(up.url));
    const child = g.child;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const port = g.port;
    assert.equal((await request(`http://127.0.0.1:${port}/`)).status, 200, 'serving before the signal');

    const inflight = request(`http://127.0.0.1:${port}/slow`);
    assert.ok(await until(() => holding.length === 1, 10_000), 'the upstream holds the request');
    child.kill('SIGTERM');

    // Once draining has begun the listener is closed: a new connection is refused even
    // though the old request is still running (the upstream holds it until released).
    const spawned = g;
    let last = '';
    const refused = await untilAsync(async () => (last = await tryConnect(port)) === 'ECONNREFUSED', 10_000);
    assert.ok(refused, `new connections refused while draining (last: ${last}):\n${spawned.output()}`);
    assert.equal(child.exitCode, null, 'still running: the in-flight request holds the exit');
    assert.match(spawned.output(), /"event":"shutdown"/);
    release();

    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'finished');
    assert.equal(r.headers['connection'], 'close', 'a draining gateway closes the connection after the answer');

    const { code, signal } = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`process did not exit:\n${spawned.output()}`)), 15_000).unref()),
    ]);
    assert.equal(signal, null);
    assert.equal(code, 0, spawned.output());
    assert.match(spawned.output(), /"event":"stopped"/);
    assert.equal(await tryConnect(port), 'ECONNREFUSED', 'nothing listens after exit');
  });
});
