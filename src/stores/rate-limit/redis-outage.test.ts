/**
 * Redis going away and coming back, on a PRIVATE redis-server (its own ephemeral port,
 * no persistence) so that killing it disturbs nobody: decisions fail fast while it is
 * down, and the same client/store recovers by itself when it returns.
 *
 * Needs only the `redis-server` binary: missing in CI fails loudly, elsewhere it skips.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedisClient } from './redis-client.js';
import { createRedisRateLimitStore } from './redis.js';
import { T0, waitReady } from './test-support.js';
import type { RateDecision, RateHit, RateLimitStore } from './types.js';

const children = new Set<ChildProcess>();
let client: Redis | undefined;

after(() => {
  client?.disconnect();
  for (const c of children) c.kill('SIGKILL');
});

function haveRedisServer(): boolean {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, '127.0.0.1', () => done(true));
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: 'ignore',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('redis-server did not start within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

function stopRedis(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const hits: RateHit[] = [{ key: 'outage', limit: 1000, windowMs: 60_000, enforce: true }];

describe('redis rate-limit store during a Redis outage', () => {
  it('fails fast while Redis is down and recovers by itself when it returns', async (t) => {
    if (!haveRedisServer()) {
      const reason = 'redis-server binary not found';
      if (process.env.CI) throw new Error(`${reason} (required in CI)`);
      console.log(`# skipping: ${reason}`);
      t.skip(reason);
      return;
    }
    const port = await freePort();
    let server = await startRedis(port);
    client = createRedisClient({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300, connectTimeoutMs: 500 });
    await waitReady(client);
    const store: RateLimitStore = createRedisRateLimitStore({ client, timeSource: 'caller' });

    // 1. Up: decisions work.
    assert.equal(store.ready(), true);
    assert.equal((await store.hit(hits, T0)).rules[0]!.remaining, 999);

    // 2. Hung (the process is paused, the TCP connection stays open, no close event will
    // ever come): the command timeout bounds the decision.
    server.kill('SIGSTOP');
    try {
      const started = Date.now();
      await assert.rejects(async () => store.hit(hits, T0 + 1), /timed out/i);
      const took = Date.now() - started;
      assert.ok(took < 2000, `hit took ${took} ms to reject while Redis was paused`);
    } finally {
      server.kill('SIGCONT');
    }
    // The timed-out command was still in the socket, so Redis executed it after resuming:
    // a decision that timed out MAY have been recorded (counted against the client, i.e.
    // the strict side). Replies stay in order, so this decision sees it.
    assert.equal((await store.hit(hits, T0 + 1)).rules[0]!.remaining, 997);

    // 3. Down: every decision rejects quickly (never hangs), and ready() goes false.
    await stopRedis(server);
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      await assert.rejects(async () => store.hit(hits, T0 + 1));
      const took = Date.now() - started;
      assert.ok(took < 1000, `hit took ${took} ms to reject`);
    }
    const downDeadline = Date.now() + 5000;
    while (store.ready() && Date.now() < downDeadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(store.ready(), false);

    // 4. Back (a new, empty server on the same port, which also has no script cached, so
    // this exercises the NOSCRIPT -> EVAL fallback): the same client and store recover.
    server = await startRedis(port);
    const upDeadline = Date.now() + 15_000;
    let decision: RateDecision | undefined;
    while (decision === undefined && Date.now() < upDeadline) {
      try {
        decision = await store.hit(hits, T0 + 2);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(decision !== undefined, 'store did not recover within 15 s');
    // The new server has no persistence: the counter restarted.
    assert.equal(decision.rules[0]!.remaining, 999);
    assert.equal(store.ready(), true);
    assert.equal((await store.hit(hits, T0 + 3)).rules[0]!.remaining, 998);

    await store.close();
    client.disconnect();
    client = undefined;
    await stopRedis(server);
  });
});
