import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildResponseHeaders, compileHeaderPolicy, DEFAULT_SECURITY_HEADERS } from './index.js';

function pairs(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

describe('header policy', () => {
  it('defaults to the Atlas set over HTTPS, without HSTS over plain HTTP (RFC 6797 §7.2)', () => {
    assert.deepEqual(pairs(compileHeaderPolicy().setHttps), DEFAULT_SECURITY_HEADERS.map(([k, v]) => [k, v]));
    assert.deepEqual(pairs(compileHeaderPolicy().set), DEFAULT_SECURITY_HEADERS.filter(([k]) => k !== 'Strict-Transport-Security').map(([k, v]) => [k, v]));
  });

  it('an HSTS header set explicitly (headers.set) is sent on every response; removed, on none', () => {
    const explicit = compileHeaderPolicy(undefined, { set: { 'strict-transport-security': 'max-age=60' }, remove: [] });
    for (const list of [explicit.set, explicit.setHttps]) assert.deepEqual(pairs(list).filter(([k]) => k.toLowerCase() === 'strict-transport-security'), [['strict-transport-security', 'max-age=60']]);
    const removed = compileHeaderPolicy({ set: {}, remove: ['Strict-Transport-Security'] });
    for (const list of [removed.set, removed.setHttps]) assert.ok(!pairs(list).some(([k]) => k.toLowerCase() === 'strict-transport-security'));
    assert.ok(compileHeaderPolicy().drop.has('strict-transport-security'), "an upstream's HSTS never passes");
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
        true,
      ),
    );
    const names = out.map(([k]) => k.toLowerCase());
    for (const gone of ['connection', 'x-secret', 'keep-alive', 'transfer-encoding', 'server']) assert.ok(!names.includes(gone), gone);
    assert.deepEqual(out.filter(([k]) => k === 'set-cookie'), [['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
    assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-frame-options'), [['X-Frame-Options', 'SAMEORIGIN']]);
    assert.deepEqual(out.filter(([k]) => k.toLowerCase() === 'x-request-id'), [['X-Request-Id', 'ours']]);
  });
});
