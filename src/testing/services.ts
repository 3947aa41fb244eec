/**
 * Test helpers for the real services (Redis, PostgreSQL). A test that needs one calls
 * `needRedis(t)`: in CI (env CI set) an unreachable service fails the test loudly; outside
 * CI the test is skipped with a printed reason.
 */
import { Socket } from 'node:net';
import type { TestContext } from 'node:test';

export const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
export const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function probe(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}

async function need(t: TestContext, name: string, url: string): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol.startsWith('redis') ? 6379 : 5432));
  if (await probe(u.hostname, port)) return true;
  const reason = `${name} is not reachable at ${u.hostname}:${port}`;
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.log(`# skipping: ${reason}`);
  t.skip(reason);
  return false;
}

export function needRedis(t: TestContext): Promise<boolean> {
  return need(t, 'Redis', REDIS_URL);
}

export function needPostgres(t: TestContext): Promise<boolean> {
  return need(t, 'PostgreSQL', POSTGRES_URL);
}
