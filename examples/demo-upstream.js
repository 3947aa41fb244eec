// The bundled demo upstream: a tiny web app to put gatehouse in front of.
// Run alone with `node examples/demo-upstream.js [port]` (default 3900).
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

export function startDemoUpstream(port = 3900, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    // Headers a real app might leak; gatehouse strips Server and X-Powered-By.
    res.setHeader('Server', 'demo-upstream/1.0');
    res.setHeader('X-Powered-By', 'demo');
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/headers') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }, null, 2) + '\n');
      return;
    }
    if (path === '/events') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      let n = 0;
      const t = setInterval(() => {
        res.write(`data: tick ${++n}\n\n`);
        if (n === 5) {
          clearInterval(t);
          res.end();
        }
      }, 500);
      req.on('close', () => clearInterval(t));
      return;
    }
    if (req.method === 'POST' || req.method === 'PUT') {
      let bytes = 0;
      req.on('data', (c) => (bytes += c.length));
      req.on('end', () => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ path, received_bytes: bytes }) + '\n');
      });
      return;
    }
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    if (path.toLowerCase().startsWith('/login') || path.toLowerCase().startsWith('/api/login')) {
      res.end('demo login page (rate limited by gatehouse: 10/min per client)\n');
      return;
    }
    res.end(`hello from the demo upstream; you asked for ${req.url}\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 3900);
  startDemoUpstream(port).then(() => console.log(`demo upstream on http://127.0.0.1:${port}`));
}
