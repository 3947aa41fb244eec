/**
 * Usage reading (usage.ts): JSON and server-sent events of each API, events split at any
 * byte (property test), and the usage chunk the gateway asked for taken out of the
 * stream — with everything else passed on byte for byte.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { bodyKind, usageOf, UsageReader } from './usage.js';

const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm' };
const openaiStream = (withUsage: boolean, eol = '\n') => {
  const parts = [
    chunk({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' } }], usage: null }),
    chunk({ ...base, choices: [{ index: 0, delta: { content: 'Hello' } }], usage: null }),
    chunk({ ...base, choices: [{ index: 0, delta: { content: ' wörld' } }], usage: null }),
    chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }),
  ];
  const usage = withUsage ? chunk({ ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } }) : '';
  return { parts: parts.map((p) => p.replaceAll('\n', eol)), usage: usage.replaceAll('\n', eol), done: 'data: [DONE]\n\n'.replaceAll('\n', eol) };
};

function feedAll(r: UsageReader, bytes: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    const piece = bytes.subarray(at, c);
    at = c;
    const o = r.feed(Buffer.from(piece));
    if (o !== null) out.push(o);
  }
  r.end();
  return Buffer.concat(out);
}

it('usage objects of each API', () => {
  assert.deepEqual(usageOf({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }), { prompt: 3, completion: 4, total: 7 });
  assert.deepEqual(usageOf({ prompt_tokens: 8, total_tokens: 8 }), { prompt: 8, completion: 0, total: 8 });
  assert.deepEqual(usageOf({ input_tokens: 5, output_tokens: 6, total_tokens: 11 }), { prompt: 5, completion: 6, total: 11 });
  assert.deepEqual(usageOf({ input_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 10, output_tokens: 6 }), { prompt: 115, completion: 6, total: 121 });
  assert.equal(usageOf(null), null);
  assert.equal(usageOf({ prompt_tokens: -1 }), null);
  assert.equal(usageOf({ prompt_tokens: '3' }), null);
  // A total below its parts is not believed.
  assert.deepEqual(usageOf({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 1 }), { prompt: 3, completion: 4, total: 7 });
  assert.equal(bodyKind('text/event-stream; charset=utf-8'), 'sse');
  assert.equal(bodyKind('application/json'), 'json');
  assert.equal(bodyKind('text/html'), 'other');
});

it('JSON answers: usage at the end, the body passed through untouched', () => {
  const body = Buffer.from(JSON.stringify({ id: 'x', choices: [], usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } }));
  const r = new UsageReader('chat', 'json', false);
  assert.deepEqual(feedAll(r, body, [1, 7, 20]), body);
  assert.deepEqual(r.usage, { prompt: 2, completion: 3, total: 5 });
  const bad = new UsageReader('chat', 'json', false);
  feedAll(bad, Buffer.from('{"truncated":'), []);
  assert.equal(bad.usage, null);
});

it('an SSE stream split at any byte: the same usage, and only the gateway-requested usage chunk removed', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), fc.constantFrom('\n', '\r\n'), (rawCuts, strip, eol) => {
      const s = openaiStream(true, eol);
      const all = Buffer.from(s.parts.join('') + s.usage + s.done);
      const cuts = [...new Set(rawCuts.map((c) => c % (all.length + 1)))].sort((x, y) => x - y);
      const r = new UsageReader('chat', 'sse', strip);
      const out = feedAll(r, all, cuts);
      assert.deepEqual(r.usage, { prompt: 9, completion: 2, total: 11 });
      assert.equal(out.toString(), strip ? s.parts.join('') + s.done : all.toString());
      assert.equal(r.textChars, 'Hello wörld'.length);
    }),
  );
});

it('Anthropic streams: input from message_start, output from message_delta, final at message_stop', () => {
  const ev = (name: string, o: unknown) => `event: ${name}\ndata: ${JSON.stringify(o)}\n\n`;
  const text =
    ev('message_start', { type: 'message_start', message: { usage: { input_tokens: 25, output_tokens: 1 } } }) +
    ev('content_block_delta', { type: 'content_block_delta', delta: { type: 'text_delta', text: 'Hi there' } }) +
    ev('message_delta', { type: 'message_delta', usage: { output_tokens: 15 } }) +
    ev('message_stop', { type: 'message_stop' });
  const r = new UsageReader('messages', 'sse', false);
  feedAll(r, Buffer.from(text), [5, 60]);
  assert.deepEqual(r.usage, { prompt: 25, completion: 15, total: 40 });
  // Cut before message_stop (the client left): not final, but the counts so far are known.
  const cut = new UsageReader('messages', 'sse', false);
  cut.feed(Buffer.from(text.slice(0, text.indexOf('event: message_stop'))));
  assert.equal(cut.usage, null);
  assert.deepEqual([cut.promptSoFar, cut.completionSoFar, cut.textChars], [25, 15, 8]);
});

it('the Responses API: usage in response.completed', () => {
  const text = `event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', delta: 'abc' })}\n\nevent: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { usage: { input_tokens: 4, output_tokens: 3, total_tokens: 7 } } })}\n\n`;
  const r = new UsageReader('responses', 'sse', false);
  feedAll(r, Buffer.from(text), [30]);
  assert.deepEqual(r.usage, { prompt: 4, completion: 3, total: 7 });
  assert.equal(r.textChars, 3);
});

it('a stream that is not SSE after all (one endless line) is passed on unparsed', () => {
  const r = new UsageReader('chat', 'sse', true);
  const big = Buffer.alloc(1024 * 1024 + 10, 0x61);
  const out = r.feed(big);
  assert.equal(out?.length, big.length);
  assert.equal(r.feed(Buffer.from('data: {"usage":{"prompt_tokens":1}}\n\n'))?.length, 37);
  assert.equal(r.usage, null);
});
