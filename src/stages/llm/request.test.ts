/** The LLM stage's body decisions (request.ts): refusals, clamps, aliases, the canonical rewrite and its number check. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { endpointFor } from './endpoints.js';
import { checkRequest, numbersSurvive, type ModelEntry, type RequestOptions } from './request.js';

const models = new Map<string, ModelEntry>([
  ['gpt', { name: 'gpt', upstream: 'gpt', maxOutputTokens: null }],
  ['fast', { name: 'fast', upstream: 'gpt-mini', maxOutputTokens: 100 }],
]);
const opts = (o: Partial<RequestOptions['grant']> = {}, over: 'clamp' | 'refuse' = 'clamp'): RequestOptions => ({
  models,
  grant: { allowsModel: () => true, maxOutputTokens: 500, maxN: 1, tools: true, ...o },
  overMaxTokens: over,
});
const chat = endpointFor('openai', '/v1/chat/completions')!;
const check = (body: string, o = opts(), ep = chat) => checkRequest(ep, JSON.parse(body) as Record<string, unknown>, Buffer.from(body), o);

it('endpoints by provider, with trailing slash and model ids', () => {
  assert.equal(endpointFor('openai', '/v1/chat/completions/')?.dialect, 'chat');
  assert.equal(endpointFor('openai', '/v1/models/gpt-4')?.dialect, 'models');
  assert.equal(endpointFor('openai', '/v1/messages'), null);
  assert.equal(endpointFor('anthropic', '/v1/messages')?.dialect, 'messages');
  assert.equal(endpointFor('anthropic', '/v1/chat/completions'), null);
  assert.equal(endpointFor('openai', '/v1/files'), null);
});

it('forwards the bytes intact when nothing must change', () => {
  const body = '{"model":"gpt","max_tokens":10,"messages":[],"seed":123456789012345678901234}';
  const v = check(body);
  assert.ok(v.ok);
  assert.equal(v.rewritten, false);
  assert.equal(v.body.toString(), body, 'even a number JavaScript cannot hold: it is not re-serialized');
});

it('rewrites canonically: alias, clamp, missing cap, usage on streams; a huge integer then refuses', () => {
  const v = check('{"model":"fast","max_tokens":1000,"stream":true,"messages":[]}');
  assert.ok(v.ok);
  assert.equal(v.body.toString(), '{"model":"gpt-mini","max_tokens":100,"stream":true,"messages":[],"stream_options":{"include_usage":true}}');
  assert.equal(v.stripUsage, true);
  assert.equal(v.maxOutput, 100);
  const kept = check('{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"max_tokens":5}');
  assert.ok(kept.ok && !kept.rewritten && !kept.stripUsage);
  const turnedOn = check('{"model":"gpt","stream":true,"stream_options":{"include_usage":false,"x":1},"max_tokens":5}');
  assert.ok(turnedOn.ok && turnedOn.stripUsage);
  assert.equal(turnedOn.body.toString(), '{"model":"gpt","stream":true,"stream_options":{"include_usage":true,"x":1},"max_tokens":5}');
  assert.deepEqual(check('{"model":"fast","seed":123456789012345678901234}'), { ok: false, code: 'invalid_body', rule: 'number' });
  const refuse = check('{"model":"gpt","max_tokens":501}', opts({}, 'refuse'));
  assert.deepEqual(refuse, { ok: false, code: 'llm_parameter_not_allowed', rule: 'max_tokens' });
});

it('refuses what it cannot decide on one reading', () => {
  assert.deepEqual(check('{"model":["gpt"]}'), { ok: false, code: 'invalid_body', rule: 'model' });
  assert.deepEqual(check('{"model":"gpt","Stream":true}'), { ok: false, code: 'invalid_body', rule: 'field_case' });
  assert.deepEqual(check('{"model":"gpt","n":0}'), { ok: false, code: 'invalid_body', rule: 'n' });
  assert.deepEqual(check('{"model":"gpt","n":2}'), { ok: false, code: 'llm_parameter_not_allowed', rule: 'n' });
  assert.deepEqual(check('{"model":"gpt","max_tokens":1.5}'), { ok: false, code: 'invalid_body', rule: 'max_tokens' });
  assert.deepEqual(check('{"model":"gpt","stream":true,"stream_options":[]}'), { ok: false, code: 'invalid_body', rule: 'stream_options' });
  assert.deepEqual(check('{"model":"gpt","tools":[{}]}', opts({ tools: false })), { ok: false, code: 'llm_parameter_not_allowed', rule: 'tools' });
  assert.ok(check('{"model":"gpt","tools":[]}', opts({ tools: false })).ok, 'an empty tool list declares nothing');
  assert.deepEqual(check('{"model":"nope"}'), { ok: false, code: 'model_not_allowed', rule: 'model' });
  assert.deepEqual(check('{"model":"gpt"}', opts({ allowsModel: (m) => m === 'fast' })), { ok: false, code: 'model_not_allowed', rule: 'grant' });
});

it('numbersSurvive: exactly the numbers JSON.parse + JSON.stringify would change', () => {
  assert.equal(numbersSurvive('{"a":9007199254740991,"b":-0.1,"c":1e300,"s":"99999999999999999999"}'), true);
  assert.equal(numbersSurvive('{"a":9007199254740993}'), false);
  assert.equal(numbersSurvive('{"a":1e400}'), false);
  assert.equal(numbersSurvive('{"a":"\\"","b":[1,2,{"c":12345678901234567890}]}'), false);
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      // What JSON.stringify writes always survives (it writes only safe shortest forms).
      assert.equal(numbersSurvive(JSON.stringify(v)), true);
    }),
  );
});
