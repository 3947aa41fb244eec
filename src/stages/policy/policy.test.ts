import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DecisionCache, decisionKey, evaluate, type Decision, type DecisionInput } from './decide.js';
import { contextUse, loadPolicySet, PolicyLoadError, type ContextUse } from './policy-set.js';

const file = (text: string, name = 'p.cedar'): string => {
  const f = join(mkdtempSync(join(tmpdir(), 'gatehouse-policy-unit-')), name);
  writeFileSync(f, text);
  return f;
};
const input: DecisionInput = {
  identity: { subject: 'a', type: 'agent', role: null, domain: 'd', agent: null, tokenIdHash: null },
  method: 'GET',
  clientIp: '10.1.2.3',
  path: '/x',
  hour: 9,
  weekday: 1,
  body: null,
};
const resource = { site: 's', pathPrefix: '/', upstream: 'u', zone: 'z', domain: 'd' };

describe('policy sets', () => {
  it('ids come from @id, else <file>:<n>; duplicates and templates are refused', () => {
    const set = loadPolicySet([file('@id("first") permit(principal, action, resource);\nforbid(principal, action, resource) when { false };', 'a.cedar')]);
    assert.deepEqual(set.ids, ['first', 'a.cedar:2']);
    assert.throws(() => loadPolicySet([file('@id("x") permit(principal, action, resource);\n@id("x") forbid(principal, action, resource);')]), /duplicate policy id "x"/);
    assert.throws(() => loadPolicySet([file('permit(principal == ?principal, action, resource);')]), /templates are not supported/);
    assert.throws(() => loadPolicySet([file('// nothing\n')]), (e: unknown) => e instanceof PolicyLoadError && /holds no policy/.test(e.message));
  });

  it('context: ip ranges, hour, path; resource attributes', () => {
    const set = loadPolicySet([file('@id("office") permit(principal, action, resource) when { context.ip.isInRange(ip("10.0.0.0/8")) && context.hour >= 8 && context.hour < 18 && context.path like "/x*" && resource.zone == "z" };')]);
    assert.equal(evaluate(set, resource, input).decision, 'allow');
    assert.equal(evaluate(set, resource, { ...input, hour: 20 }).decision, 'deny');
    assert.equal(evaluate(set, resource, { ...input, clientIp: '192.0.2.1' }).decision, 'deny');
  });

  it('the cache key covers every input that can change a decision', () => {
    const all: ContextUse = { ip: true, path: true, method: true, hour: true, weekday: true, body: true };
    const k = decisionKey(input, all);
    for (const v of [{ method: 'POST' }, { clientIp: '10.1.2.4' }, { path: '/y' }, { hour: 10 }, { weekday: 2 }, { body: { model: 'm' } }, { identity: null }, { identity: { ...input.identity!, role: 'r' } }]) {
      assert.notEqual(decisionKey({ ...input, ...v } as DecisionInput, all), k, JSON.stringify(v));
    }
    // Context fields no policy reads stay out of the key (one entry for every client IP).
    const none: ContextUse = { ip: false, path: false, method: false, hour: false, weekday: false, body: false };
    assert.equal(decisionKey({ ...input, clientIp: '192.0.2.9', path: '/z', hour: 3 }, none), decisionKey(input, none));
    assert.notEqual(decisionKey({ ...input, method: 'POST' }, none), decisionKey(input, none), 'the action always counts');
  });

  it('context use is found conservatively', () => {
    assert.deepEqual(contextUse(['permit(principal, action, resource) when { context.path like "/a*" && context . hour > 3 };']), { ip: false, path: true, method: false, hour: true, weekday: false, body: false });
    assert.equal(contextUse(['permit(principal, action, resource) when { context has ip };']).ip, true, 'anything but context.<field> means every field');
    assert.equal(contextUse(['permit(principal, action, resource) when { context["weekday"] == 1 };']).weekday, true);
    assert.equal(contextUse(['permit(principal, action, resource) when { context.unknown == 1 };']).ip, true);
    assert.equal(contextUse(['permit(principal, action, resource);']).ip, false);
  });

  it('the decision cache is a bounded LRU', () => {
    const c = new DecisionCache(2);
    const d: Decision = { decision: 'allow', policies: [], errors: null };
    c.set('a', d);
    c.set('b', d);
    assert.ok(c.get('a'));
    c.set('c', d); // evicts b, the least recently used
    assert.equal(c.get('b'), undefined);
    assert.ok(c.get('a') && c.get('c'));
    assert.equal(c.size, 2);
    const off = new DecisionCache(0);
    off.set('a', d);
    assert.equal(off.get('a'), undefined);
  });
});
