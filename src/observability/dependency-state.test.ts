import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import pino from 'pino';
import { createDependencyStates } from './dependency-state.js';
import { createMetrics } from './metrics.js';

function setup() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, sink);
  const metrics = createMetrics({ version: 'test', defaultMetrics: false });
  let t = 1000;
  const deps = createDependencyStates(log, metrics, () => t);
  return { lines, metrics, deps, advance: (ms: number) => (t += ms) };
}

it('logs and counts only changes: many reports of one outage are one warn, the recovery one info', async () => {
  const { lines, metrics, deps, advance } = setup();
  const h = deps.dependency('rate_limit_store');
  h.up(); // the first report, up: gauge only, no line
  for (let i = 0; i < 100; i++) h.down(new Error('connect ECONNREFUSED 127.0.0.1:1'));
  advance(2500);
  for (let i = 0; i < 100; i++) h.up();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    lines.map((l) => [l.level, l.event, l.dependency, l.kind]),
    [
      ['warn', 'dependency_down', 'rate_limit_store', 'rate_limit_store'],
      ['info', 'dependency_up', 'rate_limit_store', 'rate_limit_store'],
    ],
  );
  assert.equal(lines[0]?.err, 'connect ECONNREFUSED 127.0.0.1:1');
  assert.equal(lines[1]?.down_ms, 2500);
  const text = await metrics.registry.metrics();
  assert.match(text, /gatehouse_dependency_up\{dependency="rate_limit_store"\} 1/);
  assert.match(text, /gatehouse_dependency_transitions_total\{dependency="rate_limit_store",state="down"\} 1/);
  assert.match(text, /gatehouse_dependency_transitions_total\{dependency="rate_limit_store",state="up"\} 1/);
});

it('a dependency that starts down says so once; a kind may keep its own event names; forget removes the gauge', async () => {
  const { lines, metrics, deps } = setup();
  deps.report('jwks:http://127.0.0.1:1/jwks.json', false, 'HTTP 500');
  deps.report('jwks:http://127.0.0.1:1/jwks.json', false, 'HTTP 500');
  const u = deps.dependency('upstream:app:http://127.0.0.1:2', { events: { down: 'upstream_unhealthy', up: 'upstream_healthy' } });
  u.up();
  u.down('3 consecutive failures');
  u.up();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    lines.map((l) => [l.level, l.event, l.dependency, l.kind]),
    [
      ['warn', 'dependency_down', 'jwks:http://127.0.0.1:1/jwks.json', 'jwks'],
      ['warn', 'upstream_unhealthy', 'upstream:app:http://127.0.0.1:2', 'upstream'],
      ['info', 'upstream_healthy', 'upstream:app:http://127.0.0.1:2', 'upstream'],
    ],
  );
  assert.deepEqual(deps.snapshot(), { 'jwks:http://127.0.0.1:1/jwks.json': false, 'upstream:app:http://127.0.0.1:2': true });
  deps.forget('jwks:http://127.0.0.1:1/jwks.json');
  assert.doesNotMatch(await metrics.registry.metrics(), /gatehouse_dependency_up\{dependency="jwks/);
});
