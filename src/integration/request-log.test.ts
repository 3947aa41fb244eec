/** The request line (docs/operations.md#request-lines): 5xx at warn, 4xx at info, the user agent bounded and escaped. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { logUserAgent, USER_AGENT_LOG_MAX } from '../pipeline/respond.js';
import { baseConfig, request, sleep, startGateway, startUpstream } from '../testing/harness.js';
import { freePort } from '../testing/redis-server.js';

it('logs 5xx answers at warn and 4xx at info, with the user agent', async () => {
  const up = await startUpstream((req, res) => {
    res.writeHead(req.url === '/missing' ? 404 : req.url === '/broken' ? 500 : 200);
    res.end();
  });
  const deadPort = await freePort();
  const g = await startGateway(
    baseConfig(up.url, {}, {
      sites: [
        { id: 'app', hosts: ['127.0.0.1'], upstream: { urls: [up.url] } },
        { id: 'dead', hosts: ['localhost'], upstream: { urls: [`http://127.0.0.1:${deadPort}`] } },
      ],
    }),
  );
  try {
    const ua = { 'user-agent': 'curl/8.5.0' };
    assert.equal((await request(`${g.url}/ok`, { headers: ua })).status, 200);
    assert.equal((await request(`${g.url}/missing`, { headers: ua })).status, 404);
    assert.equal((await request(`${g.url}/broken`, { headers: ua })).status, 500);
    assert.equal((await request(`${g.url}/x`, { headers: { ...ua, host: 'localhost' } })).status, 502);
    await sleep(100);
    const lines = g.logs.filter((l) => l.msg === 'request').map((l) => [l.path, l.status, l.level, l.user_agent]);
    assert.deepEqual(lines, [
      ['/ok', 200, 'info', 'curl/8.5.0'],
      ['/missing', 404, 'info', 'curl/8.5.0'],
      ['/broken', 500, 'warn', 'curl/8.5.0'],
      ['/x', 502, 'warn', 'curl/8.5.0'],
    ]);
    // Without the header the field is null (present, so a log query can tell "none" from "not logged").
    await request(`${g.url}/ok`);
    await sleep(50);
    assert.equal(g.logs.findLast((l) => l.msg === 'request')?.user_agent, null);
  } finally {
    await g.close();
    await up.close();
  }
});

it('bounds the logged user agent and writes control characters as \\xNN', async () => {
  assert.equal(logUserAgent(undefined), null);
  assert.equal(logUserAgent('Mozilla/5.0'), 'Mozilla/5.0');
  assert.equal(logUserAgent('a\tb\x1b[31mred\x7f'), 'a\\x09b\\x1b[31mred\\x7f');
  const long = 'x'.repeat(10_000);
  const logged = logUserAgent(long) as string;
  assert.equal(logged, `${'x'.repeat(USER_AGENT_LOG_MAX)}…`);
  // The bound holds for the raw characters: escaping cannot make a long line longer than 4×.
  assert.ok((logUserAgent('\x01'.repeat(10_000)) as string).length <= USER_AGENT_LOG_MAX * 4 + 1);
});
