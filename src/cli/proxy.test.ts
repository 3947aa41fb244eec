import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { BIN, request, SECURITY_HEADERS, startUpstream, type Upstream } from '../testing/harness.js';

const run = promisify(execFile);

async function gatehouse(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('gatehouse proxy (one-line start)', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
  });

  it('runs with the Atlas defaults, prints the config it runs, and curl gets through with the security headers', async () => {
    const child = spawn(process.execPath, [BIN, 'proxy', '--from', '127.0.0.1:0', '--to', up.url, '--admin', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.resume();
    try {
      for (let i = 0; i < 600 && !/Logs \(JSON/.test(stderr); i++) await new Promise((ok) => setTimeout(ok, 50));
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      assert.ok(m, stderr);
      const base = `http://127.0.0.1:${m[1]}`;
      const { stdout } = await run('curl', ['-s', '-i', '-H', 'Host: anything.example', `${base}/hello`]);
      assert.match(stdout, /^HTTP\/1\.1 200/);
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.ok(stdout.toLowerCase().includes(`${k}: ${v}`.toLowerCase()), `${k} in\n${stdout}`);
      assert.equal(up.seen.at(-1)?.url, '/hello');
      // 10/min on login paths, per client.
      const codes: number[] = [];
      for (let i = 0; i < 11; i++) codes.push((await request(`${base}/login`)).status);
      assert.deepEqual(codes.slice(0, 10), Array(10).fill(200));
      assert.equal(codes[10], 429);
      // The printed config is what runs: it names the upstream and the defaults.
      assert.match(stderr, new RegExp(`- ${up.url.replace(/[.]/g, '\\.')}`));
      assert.match(stderr, /hosts:\s*\n\s*- "\*"/);
      assert.match(stderr, /192\.168\.0\.0\/16/);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  it('--print-config writes a config that `gatehouse check` accepts', async () => {
    const r = await gatehouse(['proxy', '--from', ':8080', '--to', '127.0.0.1:3000', '--to', 'http://127.0.0.1:3001', '--print-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /http:\/\/127\.0\.0\.1:3000/, 'http:// assumed without a scheme');
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-proxy-')), 'gatehouse.yaml');
    writeFileSync(file, r.stdout);
    const c = await gatehouse(['check', '--config', file]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /ok \(1 site\(s\)\)/);
  });

  it('--help explains it (exit 0); a missing --to or a bad address is a usage error (exit 2) that says what to do', async () => {
    const h = await gatehouse(['proxy', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--from ADDRESS/);
    const none = await gatehouse(['proxy', '--from', ':8080']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--to URL is required/);
    assert.match(none.stderr, /gatehouse proxy --help/);
    const bad = await gatehouse(['proxy', '--from', 'nowhere', '--to', 'http://127.0.0.1:1', '--print-config']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /listen\[0\]\.address/);
  });
});
