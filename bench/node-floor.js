#!/usr/bin/env node
// Scenario (i) of the benchmark: the floor of any Node.js gateway built on node:http and
// undici — what a request costs before any security work. It forwards method, path and
// headers to one upstream through an undici Pool (the same client and pool settings as
// gatehouse's proxy stage) and streams the answer back. No IP filter, no rate limit, no
// token, no security headers, no logging, no metrics: nothing gatehouse must do. It is not a
// product; it answers "how fast can the platform itself go on this machine", so the gap
// between (i) and HAProxy (g) is the platform's, and the gap between (e) and (i) is ours.
//
// Usage: node bench/node-floor.js PORT UPSTREAM-URL   (prints "node-floor listening on ..." when ready)
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// undici from the project (gatehouse's own dependency), not a second copy.
const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json'));
const { Pool } = require('undici');

const port = Number(process.argv[2] ?? 18090);
const upstream = process.argv[3] ?? 'http://127.0.0.1:18000';
const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

// The same undici call gatehouse's proxy stage makes (dispatch with a handler, headers as a
// flat list, backpressure by pausing the controller): the cheapest way undici offers.
const server = http.createServer((req, res) => {
  const cl = req.headers['content-length'];
  const hasBody = cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
  const raw = req.rawHeaders;
  const headers = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  pool.dispatch(
    { method: req.method, path: req.url, headers, body: hasBody ? req : null },
    {
      onRequestStart() {},
      onResponseStart(_c, statusCode, h) {
        const list = [];
        for (const name in h) {
          if (HOP.has(name)) continue;
          const v = h[name];
          if (Array.isArray(v)) for (const x of v) list.push(name, x);
          else list.push(name, v);
        }
        res.writeHead(statusCode, list);
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (res.headersSent) return void res.destroy();
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway');
      },
    },
  );
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`node-floor listening on 127.0.0.1:${port}\n`));
