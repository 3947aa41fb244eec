/** The http-01 responder: known tokens answered, everything else handed on untouched; shared-store lookups bounded. */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Http01Responder, MAX_REMOTE_LOOKUPS } from './http-01.js';

async function withServer(r: Http01Responder, fn: (get: (path: string, method?: string) => Promise<{ status: number; body: string }>) => Promise<void>): Promise<void> {
  const next = (_req: IncomingMessage, res: ServerResponse) => res.writeHead(404).end('site');
  const server = createServer((req, res) => r.handle(req, res, next));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  const get = (path: string, method = 'GET') =>
    new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', fail);
      req.end();
    });
  try {
    await fn(get);
  } finally {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  }
}

describe('http-01 responder', () => {
  it('answers a pending token with its key authorization and hands every other request on', async () => {
    const r = new Http01Responder();
    r.add('tok_1', 'tok_1.thumb');
    await withServer(r, async (get) => {
      assert.deepEqual(await get('/.well-known/acme-challenge/tok_1'), { status: 200, body: 'tok_1.thumb' });
      assert.deepEqual(await get('/.well-known/acme-challenge/tok_1', 'HEAD'), { status: 200, body: '' });
      for (const p of ['/.well-known/acme-challenge/other', '/.well-known/acme-challenge/tok_1/x', '/.well-known/acme-challenge/tok_1?x', '/', '/.well-known/acme-challenge/']) {
        assert.equal((await get(p)).body, 'site', p);
      }
      assert.equal((await get('/.well-known/acme-challenge/tok_1', 'POST')).body, 'site');
      r.remove('tok_1');
      assert.equal((await get('/.well-known/acme-challenge/tok_1')).body, 'site', 'gone once the order is done');
    });
  });

  it('asks the shared store for tokens of other instances, at most MAX_REMOTE_LOOKUPS at a time', async () => {
    const r = new Http01Responder();
    const waiting: Array<() => void> = [];
    r.remote = (token) =>
      token === 'shared'
        ? Promise.resolve('shared.thumb')
        : new Promise((ok) => waiting.push(() => ok(null)));
    await withServer(r, async (get) => {
      assert.deepEqual(await get('/.well-known/acme-challenge/shared'), { status: 200, body: 'shared.thumb' });
      const slow = Array.from({ length: MAX_REMOTE_LOOKUPS }, (_, i) => get(`/.well-known/acme-challenge/slow${i}`));
      while (waiting.length < MAX_REMOTE_LOOKUPS) await new Promise((ok) => setTimeout(ok, 10));
      assert.equal((await get('/.well-known/acme-challenge/shared')).body, 'site', 'over the bound: handed on without a lookup');
      for (const w of waiting) w();
      for (const s of await Promise.all(slow)) assert.equal(s.body, 'site');
      assert.equal((await get('/.well-known/acme-challenge/shared')).body, 'shared.thumb');
    });
  });
});
