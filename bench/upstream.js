#!/usr/bin/env node
// Minimal upstream for the benchmark: GET / -> 200 with a small fixed text body, keep-alive on.
// Usage: node bench/upstream.js [port]   (or PORT=...; default 18000). Listens on 127.0.0.1 only.
import http from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 18000);
const host = process.env.HOST ?? '127.0.0.1';

// ~100 bytes, fixed.
const BODY = Buffer.from('gatehouse bench upstream: hello from the origin server. this body is a fixed 100 byte payload......\n');
const HEADERS = {
  'content-type': 'text/plain',
  'content-length': String(BODY.length),
};

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?'))) {
    res.writeHead(200, HEADERS);
    res.end(BODY);
    return;
  }
  // Drain anything sent and answer 404 without closing the connection.
  req.resume();
  res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' });
  res.end('not found\n');
});

// Keep-alive on, generous timeouts so load generators and proxies keep their pooled sockets.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen(port, host, () => {
  process.stdout.write(`upstream listening on http://${host}:${server.address().port} (body ${BODY.length} bytes)\n`);
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
