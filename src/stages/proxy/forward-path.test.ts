import assert from 'node:assert/strict';
import { it } from 'node:test';
import { canonicalPath, normalizePath } from '../../http/path.js';
import { compileStrip, strippedPath } from './forward-path.js';
import { compileRedirectTarget } from './redirect.js';

const strip = compileStrip('/api/v1') as NonNullable<ReturnType<typeof compileStrip>>;

function forward(raw: string): string | null {
  const path = canonicalPath(raw, true).path as string;
  return strippedPath(path, normalizePath(path) as string, strip);
}

it('strips the prefix segments from the canonical path, keeping the rest as the client spelled it', () => {
  assert.equal(forward('/api/v1/users'), '/users');
  assert.equal(forward('/api/v1'), '/');
  assert.equal(forward('/api/v1/'), '/');
  assert.equal(forward('/API/V1/Users'), '/Users', 'matched case-insensitively like routing; the rest keeps its case');
  assert.equal(forward('/api/x/../v1/a//b'), '/a/b', 'canonical first: dot segments and // resolved');
  assert.equal(forward('/api;x/v1/a'), '/a', ';params of a prefix segment go with it');
});

it('refuses (null) when the stripped path would not be the matched path minus the prefix', () => {
  const s = compileStrip('/api') as NonNullable<ReturnType<typeof compileStrip>>;
  assert.equal(strippedPath('/other/x', '/other/x', s), null);
  assert.equal(strippedPath('/api/x', '/api/y', s), null);
});

it('compileStrip: / and absent strip nothing', () => {
  assert.equal(compileStrip(undefined), null);
  assert.equal(compileStrip('/'), null);
  assert.deepEqual(compileStrip('/a/b/'), { segments: 2, normPrefix: '/a/b' });
});

it('redirect targets compile into literals and {path}/{query}/{uri} slots', () => {
  assert.deepEqual(compileRedirectTarget('https://n.test{uri}'), ['https://n.test', { slot: 'uri' }]);
  assert.deepEqual(compileRedirectTarget('/m{path}x{query}'), ['/m', { slot: 'path' }, 'x', { slot: 'query' }]);
  assert.deepEqual(compileRedirectTarget('/plain'), ['/plain']);
});
