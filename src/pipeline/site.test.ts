import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createRouter, type CompiledSite } from './site.js';

const site = (id: string, prefix: string) => ({ id, prefix }) as unknown as CompiledSite;

it('routes exact hosts before wildcards, longest prefix first, prefixes on segment boundaries', () => {
  const root = site('root', '');
  const api = site('api', '/api');
  const wild = site('wild', '');
  const wildAdmin = site('wild-admin', '/admin');
  const deeper = site('deeper', '');
  const r = createRouter([
    { host: 'a.test', site: root },
    { host: 'a.test', site: api },
    { host: '*.b.test', site: wild },
    { host: '*.b.test', site: wildAdmin },
    { host: '*.x.b.test', site: deeper },
  ]);
  assert.equal(r.match('a.test', '/')?.id, 'root');
  assert.equal(r.match('a.test', '/api')?.id, 'api');
  assert.equal(r.match('a.test', '/api/v1')?.id, 'api');
  assert.equal(r.match('a.test', '/apix')?.id, 'root');
  assert.equal(r.match('www.b.test', '/')?.id, 'wild');
  assert.equal(r.match('www.b.test', '/admin/x')?.id, 'wild-admin');
  assert.equal(r.match('y.x.b.test', '/')?.id, 'deeper');
  assert.equal(r.match('b.test', '/'), null, 'a wildcard needs a label');
  assert.equal(r.match('c.test', '/'), null);
});

it('the catch-all site ("*") takes every host and path nothing else matches, and only those', () => {
  const app = site('app', '/app');
  const any = site('any', '');
  const r = createRouter([
    { host: 'a.test', site: app },
    { host: '*', site: any },
  ]);
  assert.equal(r.match('a.test', '/app/x')?.id, 'app');
  assert.equal(r.match('a.test', '/other')?.id, 'any', 'a path no site of the host covers');
  assert.equal(r.match('unknown.example', '/')?.id, 'any');
  assert.equal(r.match('*', '/')?.id, 'any');
});
