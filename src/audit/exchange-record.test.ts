/** The record's time: the cached-second fast path writes exactly what Date#toISOString writes. */
import assert from 'node:assert/strict';
import test from 'node:test';
import { wallTime } from './exchange-record.js';

test('wallTime is Date#toISOString of the instant, across second boundaries, in any order', () => {
  const now = performance.now();
  // Instants around many second boundaries, going forwards, backwards and jumping by days
  // (a request's start can be older than the previous one's), with fractional milliseconds.
  const offsets: number[] = [];
  for (let i = 0; i < 2000; i++) offsets.push(((i * 7919) % 5000) - 2500 + (i % 3) * 0.37);
  offsets.push(-86_400_000 * 400, 86_400_000 * 3, 0, 0.999, 1, 999.5, 1000, 1000.001, -0.4);
  for (const o of offsets) {
    const perf = now + o;
    assert.equal(wallTime(perf), new Date(performance.timeOrigin + perf).toISOString(), `offset ${o}`);
  }
});
