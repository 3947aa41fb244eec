import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { it } from 'node:test';
import pino from 'pino';
import { createDenialLog } from './denial-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: pino({ level: 'info' }, sink) };
}

it('a flood of denials writes at most the budget plus one summary per interval, counting every denial', async () => {
  const { lines, log } = capture();
  const d = createDenialLog(log, 5, 3_600_000);
  for (let i = 0; i < 10_000; i++) d.record(`10.0.${(i >> 8) & 255}.${i & 255}`, 'app', 'allow');
  for (let i = 0; i < 500; i++) d.record('192.0.2.66', 'app', 'deny');
  d.flush();
  d.close();
  await new Promise((r) => setImmediate(r));
  const single = lines.filter((l) => l.event === 'ip_denied');
  const summaries = lines.filter((l) => l.event === 'ip_denied_summary');
  assert.equal(single.length, 5);
  assert.equal(summaries.length, 1);
  const s = summaries[0] as { suppressed: number; top: Array<{ ip: string; count: number }> };
  assert.equal(s.suppressed, 10_000 + 500 - 5, 'every denial is counted');
  assert.deepEqual(s.top[0], { ip: '192.0.2.66', count: 500 }, 'the heaviest address leads the summary');
});

it('the per-address table is bounded; overflow is still counted', async () => {
  const { lines, log } = capture();
  const d = createDenialLog(log, 0, 3_600_000);
  for (let i = 0; i < 20_000; i++) d.record(`2001:db8::${i.toString(16)}`, 'app', 'allow');
  d.flush();
  d.close();
  await new Promise((r) => setImmediate(r));
  const s = lines.find((l) => l.event === 'ip_denied_summary') as { suppressed: number; untracked: number; addresses: number };
  assert.equal(s.suppressed, 20_000);
  assert.equal(s.untracked, 10_000);
});
