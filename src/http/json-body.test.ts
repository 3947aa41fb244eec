import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { findDuplicateMember, isJsonContentType, parseJsonObject } from './json-body.js';

const b = (s: string) => Buffer.from(s, 'utf8');

test('a plain JSON object parses to its value', () => {
  const r = parseJsonObject(b('{"model":"m","n":1,"nested":{"a":[1,{"b":2}]}}'));
  assert.deepEqual(r, { ok: true, value: { model: 'm', n: 1, nested: { a: [1, { b: 2 }] } } });
});

test('bodies with more than one reading are refused, each with its reason', () => {
  const cases: Array<[Uint8Array, string]> = [
    [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('{"a":1}')]), 'bom'],
    [Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), 'invalid_utf8'],
    [Buffer.from('{"a":1}', 'utf16le'), 'invalid_json'],
    [b('{"a":1'), 'invalid_json'],
    [b('{"a":NaN}'), 'invalid_json'],
    [b('[{"a":1}]'), 'not_object'],
    [b('"x"'), 'not_object'],
    [b('null'), 'not_object'],
    [b('{"model":"a","model":"b"}'), 'duplicate_member'],
    [b('{"model":"a","mod\\u0065l":"b"}'), 'duplicate_member'],
    [b('{"x":{"k":1,"k":2}}'), 'duplicate_member'],
    [b('{"x":[{"k":1},{"k":2,"k":3}]}'), 'duplicate_member'],
  ];
  for (const [body, error] of cases) {
    const r = parseJsonObject(body);
    assert.equal(r.ok, false, Buffer.from(body).toString('latin1'));
    assert.equal(!r.ok && r.error, error, Buffer.from(body).toString('latin1'));
  }
});

test('selected names are also compared case-insensitively at the top level only', () => {
  const folded = new Set(['model']);
  assert.deepEqual(parseJsonObject(b('{"model":"a","Model":"b"}'), folded), { ok: false, error: 'duplicate_member', detail: 'Model' });
  assert.equal(parseJsonObject(b('{"model":"a","Model":"b"}')).ok, true);
  assert.equal(parseJsonObject(b('{"x":{"model":"a","MODEL":"b"}}'), folded).ok, true);
  assert.equal(parseJsonObject(b('{"Other":1,"other":2}'), folded).ok, true);
});

test('names are compared after unescaping, and quotes inside strings are not structure', () => {
  assert.equal(findDuplicateMember('{"a\\"":1,"a\\\\":2,"a":"}{\\"a\\":1,","b":3}'), null);
  assert.equal(findDuplicateMember('{"\\\\":1,"\\u005c":2}'), '\\');
  assert.equal(findDuplicateMember('{"a":"\\\\","a":1}'), 'a');
});

test('property: JSON.stringify of any object parses to the same value; a repeated member is found', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.nat(), (obj, pick) => {
      const text = JSON.stringify(obj);
      const r = parseJsonObject(b(text));
      assert.equal(r.ok, true);
      assert.deepEqual(r.ok && r.value, JSON.parse(text));
      const keys = Object.keys(obj);
      if (keys.length === 0) return;
      const k = keys[pick % keys.length] as string;
      const dup = `${text.slice(0, -1)},${JSON.stringify(k)}:0}`;
      const d = parseJsonObject(b(dup));
      assert.equal(!d.ok && d.error, 'duplicate_member');
    }),
  );
});

test('content types: only the listed JSON types, and no parameter but charset=utf-8', () => {
  const types = new Set(['application/json']);
  assert.equal(isJsonContentType('application/json', types), true);
  assert.equal(isJsonContentType('Application/JSON; charset=UTF-8', types), true);
  assert.equal(isJsonContentType('application/json; charset="utf-8"', types), true);
  assert.equal(isJsonContentType('application/json; charset=utf-16', types), false);
  assert.equal(isJsonContentType('application/json; boundary=x', types), false);
  assert.equal(isJsonContentType('application/x-www-form-urlencoded', types), false);
  assert.equal(isJsonContentType('text/plain', types), false);
  assert.equal(isJsonContentType(undefined, types), false);
  assert.equal(isJsonContentType('application/vnd.api+json', new Set(['application/vnd.api+json'])), true);
});
