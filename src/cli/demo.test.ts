import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { it } from 'node:test';
import { BIN, request, SECURITY_HEADERS } from '../testing/harness.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

it('`gatehouse demo` (npm start) serves the bundled example: proxied answers, login limit, metrics, clean exit', async (t) => {
  for (const port of [8080, 9090, 3900]) {
    if (!(await portFree(port))) {
      // The demo uses fixed ports by design (the README's URLs); in CI they are free.
      if (process.env.CI) assert.fail(`port ${port} is taken`);
      t.skip(`port ${port} is taken`);
      return;
    }
  }
  const child = spawn(process.execPath, [BIN, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start:\n${err}\n${out}`)), 15_000);
      const poll = setInterval(() => {
        // The hints go to stderr after the listening line: wait for both (two pipes, no order).
        if (out.includes('"event":"listening"') && err.includes('Try:')) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    assert.match(err, /Try:/, 'prints what to try');
    const home = await request('http://127.0.0.1:8080/');
    assert.equal(home.status, 200);
    assert.match(home.body, /hello from the demo upstream/);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(home.headers[k], v);
    assert.equal(home.headers['server'], undefined);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await request('http://127.0.0.1:8080/login')).status);
    assert.deepEqual(statuses, [...Array(10).fill(200), 429]);
    const metrics = await (await fetch('http://127.0.0.1:9090/metrics')).text();
    assert.match(metrics, /gatehouse_http_requests_total\{site="demo",status="429"\} 1/);
  } finally {
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0, `demo exit code\n${err}`);
  }
});

/** True once no process of the group is left (npm, its shell, the gateway). */
function groupGone(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return false;
  } catch {
    return true;
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  it(`\`npm start\` stops cleanly when npm alone gets ${signal}: no orphaned gateway, ports free`, async (t) => {
    for (const port of [8080, 9090, 3900]) {
      if (!(await portFree(port))) {
        if (process.env.CI) assert.fail(`port ${port} is taken`);
        t.skip(`port ${port} is taken`);
        return;
      }
    }
    const root = new URL('../../', import.meta.url);
    // Its own process group, so the test can tell when every process of it is gone and
    // clean up if the gateway were orphaned; the signal goes to npm's pid only, as a
    // process manager or `kill <npm pid>` would send it.
    const npm = spawn('npm', ['start'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const pgid = npm.pid as number;
    let out = '';
    npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const end = Date.now() + 30_000;
      while (!out.includes('"event":"listening"')) {
        if (Date.now() > end) assert.fail(`npm start did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.kill(pgid, signal);
      const deadline = Date.now() + 15_000;
      while (!groupGone(pgid)) {
        if (Date.now() > deadline) assert.fail(`processes of npm start still running 15 s after ${signal} to npm:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const port of [8080, 9090, 3900]) assert.ok(await portFree(port), `port ${port} still taken`);
      assert.match(out, /"event":"stopped"/, 'the gateway drained and stopped');
    } finally {
      if (!groupGone(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  });
}
