/**
 * A private redis-server for tests that need to stop and restart Redis (outage and
 * recovery) without touching the machine's shared instance.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import type { TestContext } from 'node:test';

export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

/** Fails in CI, skips with a printed reason elsewhere, when redis-server is missing. */
export function needRedisServer(t: TestContext): boolean {
  if (redisServerAvailable()) return true;
  const reason = 'redis-server binary not found';
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.log(`# skipping: ${reason}`);
  t.skip(reason);
  return false;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

function waitPort(port: number, up: boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = new Socket();
      const next = (isUp: boolean) => {
        s.destroy();
        if (isUp === up) return resolve();
        if (Date.now() > deadline) return reject(new Error(`port ${port} did not become ${up ? 'open' : 'closed'}`));
        setTimeout(attempt, 50);
      };
      s.once('error', () => next(false));
      s.connect(port, '127.0.0.1', () => next(true));
    };
    attempt();
  });
}

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitPort(port, true);
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((ok) => {
      c.once('exit', () => ok());
      c.kill('SIGKILL');
    });
    await waitPort(port, false);
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}/0`, stop, start };
}
