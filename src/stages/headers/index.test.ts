import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildResponseHeaders, compileHeaderPolicy, DEFAULT_SECURITY_HEADERS } from './index.js';

function pairs(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

describe('header policy', () => {
  it('defaults to the Atlas set', () => {
    assert.deepEqual(pairs(compileHeaderPolicy().set), DEFAULT_SECURITY_HEADERS.map(([k, v]) => [k, v]));
  });

  it('site overrides global overrides defaults, case-insensitively; remove drops a default', () => {
    const p = compileHeaderPolicy({ set: { 'x-frame-options': 'DENY' }, remove: [] }, { set: { 'Content-Security-Policy': "default-src 'self'" }, remove: ['Permissions-Policy'] });
    const m = new Map(pairs(p.set).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(m.get('x-frame-options'), 'DENY');
    assert.equal(m.get('content-security-policy'), "default-src 'self'");
    assert.equal(m.has('permissions-policy'), false);
    assert.ok(p.drop.has('permissions-policy') && p.drop.has('server'));
  });

  it('builds proxied response headers: no hop-by-hop, no Connection-named, no Server, gateway values win', () => {
    const p = compileHeaderPolicy();
    const out = pairs(
      buildResponseHeaders(
        p,
        { connection: 'close, x-secret', 'x-secret': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', server: 'nginx', 'x-frame-options': 'ALLOWALL', 'set-cookie': ['a=1', 'b=2'], 'x-request-id': 'upstream', 'content-type': 'text/plain' },
        ['X-Request-Id', 'ours'],
      ),
    );
    const names = out.map(([k]) => k.toLowerCase());
    for (const gone of ['connection', 'x-secret', 'keep-alive', 'transfer-encoding', 'server']) assert.ok(!names.includes(gone), gone);
    assert.deepEqual(out.filter(([k]) => k === 'set-cookie'), [['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
    assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-frame-options'), [['X-Frame-Options', 'SAMEORIGIN']]);
    assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-request-id'), [['X-Request-Id', 'ours']]);
  });
});
