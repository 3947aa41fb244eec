/**
 * Real upstream frameworks that read requests differently, each started on an ephemeral
 * loopback port and each keeping a ledger of what IT read (its own router's decision,
 * the raw target, its decoded path, the Host it believes, headers as it looks them up,
 * the client IP it would use, the method after its override logic, the body fields its
 * parser found). The differential suite compares those readings with what gatehouse
 * decided on.
 *
 * - Express 5 (npm): case-insensitive router on the raw (still encoded) path,
 *   `trust proxy` set to the gateway's address (so `req.hostname` and `req.ip` come from
 *   X-Forwarded-Host / X-Forwarded-For), `express.json()` and `express.urlencoded()`,
 *   and the `method-override` convention (POST + X-HTTP-Method-Override). Its server also
 *   accepts `Upgrade: h2c` and keeps reading requests on the upgraded connection, as an
 *   h2c-capable backend would: the stand-in for "an upgrade that becomes a tunnel".
 * - Python's wsgiref (standard library, python3): see frameworks/wsgi_app.py.
 * - nginx (Debian package): a real `location` match on its normalized, decoded `$uri`,
 *   `underscores_in_headers on` (so `X_Foo` is read as `$http_x_foo`), its own `$host`.
 *
 * The three share one route table: /admin, /private, /internal, /login (each with
 * everything below it) and the rest (`public`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';

export const ROUTES = ['admin', 'private', 'internal', 'login'] as const;
export type Route = (typeof ROUTES)[number] | 'public' | 'none';

/** What one framework read from one request. Strings that carry bytes are latin-1 (one char per byte). */
export interface Reading {
  readonly fw: string;
  /** The framework's own router decision; `none` when it refused before routing (parse error). */
  readonly route: Route;
  /** The request target as received. */
  readonly raw_target: string;
  /** The decoded path the framework routed on (bytes as latin-1). */
  readonly path: string;
  /** The host the framework believes (no port). */
  readonly host: string;
  /** The Host header as received. */
  readonly host_header: string;
  readonly method: string;
  /** The method the framework dispatches on (after its override headers, if it honours any). */
  readonly effective_method: string;
  /** The gateway's request id as the framework received it ('' if none). */
  readonly request_id: string;
  /** Header values as the framework looks them up, by lowercase dash name. */
  readonly headers: Readonly<Record<string, string>>;
  /** The client address the framework would use, when it derives one from headers. */
  readonly ip: string | null;
  /** Body fields its parser found (`{}`: parsed, no `model`); null when it parsed no body. */
  readonly body: { readonly model?: unknown } | null;
  readonly body_error: string | null;
}

export interface Framework {
  readonly name: string;
  readonly url: string;
  readonly ledger: Reading[];
  /** Pulls readings that are written elsewhere (nginx's log file) into `ledger`. */
  sync(): void;
  close(): Promise<void>;
}

/** Header names the nginx log reports (nginx cannot enumerate headers); the others report all. */
export const REPORTED_HEADERS = [
  'x-gatehouse-subject',
  'x-gatehouse-identity-type',
  'x-gatehouse-role',
  'x-gatehouse-domain',
  'x-gatehouse-agent',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'true-client-ip',
  'cf-connecting-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
  'x-original-forwarded-for',
  'forwarded-for',
  'x-forwarded',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-url-scheme',
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-probe',
  'x-probe-2',
  'x-request-id',
  'content-type',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'connection',
  'authorization',
] as const;

/** Percent-decodes to bytes (an invalid escape stays literal), as latin-1 text. */
export function percentDecodeLatin1(s: string): string {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c & 0xff);
  }
  return Buffer.from(out).toString('latin1');
}

// ---------------------------------------------------------------------------------------
// Express
// ---------------------------------------------------------------------------------------

function expressReading(req: IncomingMessage, route: Route, bodyError: string | null): Reading {
  const xr = req as IncomingMessage & Partial<Request>;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  const rawPath = (req.url ?? '').split('?')[0] as string;
  const body = (req as { body?: unknown }).body;
  let fields: Reading['body'] = null;
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    fields = Object.prototype.hasOwnProperty.call(b, 'model') ? { model: b.model } : {};
  }
  // An upgrade request is a bare IncomingMessage (Express never saw it): read Host as Express would.
  const hostname = typeof xr.hostname === 'string' ? xr.hostname : (headers.host ?? '').replace(/:\d*$/, '');
  const ip = typeof xr.ip === 'string' ? xr.ip : null;
  return {
    fw: 'express',
    route,
    raw_target: (req as { originalUrl?: string }).originalUrl ?? req.url ?? '',
    path: percentDecodeLatin1(rawPath),
    host: hostname,
    host_header: headers.host ?? '',
    method: (req as { originalMethod?: string }).originalMethod ?? req.method ?? '',
    effective_method: req.method ?? '',
    request_id: headers['x-request-id'] ?? '',
    headers,
    ip,
    body: fields,
    body_error: bodyError,
  };
}

/** The Express route a path would take (for requests Express's router never sees: upgrades). */
function expressRouteOf(url: string): Route {
  const p = (url.split('?')[0] as string).toLowerCase();
  for (const r of ROUTES) if (p === `/${r}` || p === `/${r}/` || p.startsWith(`/${r}/`)) return r;
  return 'public';
}

export async function startExpress(): Promise<Framework> {
  const ledger: Reading[] = [];
  const app = express();
  // The gateway is the only proxy in front: believe its X-Forwarded-* (what a deployment does).
  app.set('trust proxy', '127.0.0.1');
  // The `method-override` package's default: POST with X-HTTP-Method-Override.
  app.use((req: Request, _res: Response, next: NextFunction) => {
    (req as { originalMethod?: string }).originalMethod = req.method;
    const o = req.headers['x-http-method-override'];
    if (req.method === 'POST' && typeof o === 'string' && o !== '') req.method = o.toUpperCase();
    next();
  });
  app.use(express.json());
  app.use(express.urlencoded({ extended: false }));
  const report = (route: Route) => (req: Request, res: Response) => {
    const r = expressReading(req, route, null);
    ledger.push(r);
    // Header bytes on the way back: the probe's bytes (latin-1 string, written as such by Node).
    const probe = req.headers['x-probe'];
    if (typeof probe === 'string') res.setHeader('X-Echo-Probe', probe);
    res.json(r);
  };
  for (const r of ROUTES) app.all([`/${r}`, `/${r}/*rest`], report(r));
  app.all('/{*rest}', report('public'));
  // Body parser failures: the framework received the request and refused it itself.
  app.use((err: { type?: string; status?: number }, req: Request, res: Response, _next: NextFunction) => {
    const r = expressReading(req, 'none', err.type ?? String(err));
    ledger.push(r);
    res.status(err.status ?? 400).json(r);
  });

  const server: Server = createServer(app);
  // A second server that reads requests from upgraded connections (see the file comment).
  const tunnel: Server = createServer(app);
  // Upgraded sockets leave the server's books: closed by hand in close().
  const upgraded = new Set<import('node:stream').Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    ledger.push(expressReading(req, expressRouteOf(req.url ?? ''), null));
    if (String(req.headers.upgrade ?? '').toLowerCase() !== 'h2c') {
      // Any other protocol (WebSocket included) is declined with a status, as Express apps
      // without a WebSocket server do: /keep-alive/* answers 200 and keeps the connection
      // (as nginx and wsgiref answer an upgrade they ignore), the rest 403 and close.
      if ((req.url ?? '').startsWith('/keep-alive/')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      else socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    tunnel.emit('connection', socket);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return {
    name: 'express',
    url: `http://127.0.0.1:${port}`,
    ledger,
    sync() {},
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        tunnel.closeAllConnections();
        for (const s of upgraded) s.destroy();
        server.close(() => ok());
      }),
  };
}

// ---------------------------------------------------------------------------------------
// Availability of the external frameworks
// ---------------------------------------------------------------------------------------

export interface Availability {
  readonly ok: boolean;
  readonly reason: string;
}

function onPath(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

export function nginxBinary(): string | null {
  for (const c of ['nginx', '/usr/sbin/nginx']) if (onPath(c, ['-v'])) return c;
  return null;
}

export function pythonBinary(): string | null {
  return onPath('python3', ['-c', 'import wsgiref']) ? 'python3' : null;
}

/**
 * A missing framework fails loudly under CI (it is part of the suite there: `.ci/run`
 * installs nginx), and is skipped with a printed reason elsewhere.
 */
export function requireOrSkip(name: string, found: boolean, hint: string): Availability {
  if (found) return { ok: true, reason: '' };
  const reason = `${name} is not installed (${hint})`;
  if (process.env.CI) throw new Error(`${reason}: required in CI`);
  console.log(`# skipping the ${name} upstream: ${reason}`);
  return { ok: false, reason };
}

// ---------------------------------------------------------------------------------------
// Python (wsgiref)
// ---------------------------------------------------------------------------------------

const WSGI_APP = fileURLToPath(new URL('../../../src/integration/differential/frameworks/wsgi_app.py', import.meta.url));

export async function startPython(python: string): Promise<Framework> {
  const ledger: Reading[] = [];
  const child: ChildProcess = spawn(python, ['-u', WSGI_APP], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`python upstream did not start:\n${err}`));
    }, 15_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`python upstream exited (${code}):\n${err}`));
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const m = /^LISTENING (\d+)$/.exec(line);
        if (m !== null) {
          clearTimeout(t);
          resolve(Number(m[1]));
        } else if (line.startsWith('{')) ledger.push(JSON.parse(line) as Reading);
      }
    });
  });
  child.removeAllListeners('exit');
  return {
    name: 'python',
    url: `http://127.0.0.1:${port}`,
    ledger,
    sync() {},
    close: () =>
      new Promise<void>((ok) => {
        if (child.exitCode !== null || child.signalCode !== null) return ok();
        child.once('exit', () => ok());
        child.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------

/** A free port on `host`, for a server that cannot listen on port 0 and report it. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** nginx's own address: 127.0.0.50 is reserved for this suite. */
export const NGINX_HOST = '127.0.0.50';

function nginxConfig(dir: string, port: number): string {
  const fields = REPORTED_HEADERS.map((h) => `"${h}":"$http_${h.replaceAll('-', '_')}"`).join(',');
  const reply = `'{"fw":"nginx","route":"$route"}'`;
  const loc = (r: string) => `    location = /${r} { set $route ${r}; return 200 ${reply}; }\n    location /${r}/ { set $route ${r}; return 200 ${reply}; }\n`;
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/json;
  # Read header names with underscores (X_Foo is then $http_x_foo): the harsher reading.
  underscores_in_headers on;
  ignore_invalid_headers off;
  log_format diff escape=json '{"fw":"nginx","route":"$route","raw_target":"$request_uri","path":"$uri","host":"$host","host_header":"$http_host","method":"$request_method","effective_method":"$request_method","request_id":"$http_x_request_id","status":"$status","headers":{${fields}}}';
  access_log ${dir}/access.log diff;
  server {
    listen ${NGINX_HOST}:${port} default_server;
    server_name _;
    set $route public;
${ROUTES.map(loc).join('')}    location / { set $route public; return 200 ${reply}; }
  }
}
`;
}

interface NginxLine extends Omit<Reading, 'ip' | 'body' | 'body_error'> {
  readonly status: string;
}

export async function startNginx(nginx: string): Promise<Framework> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-diff-nginx-'));
  const port = await freePort(NGINX_HOST);
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port));
  writeFileSync(join(dir, 'access.log'), '');
  const child = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${err}`);
    const up = await new Promise<boolean>((resolve) => {
      const c = connect({ port, host: NGINX_HOST });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start on ${NGINX_HOST}:${port}:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const ledger: Reading[] = [];
  const logFile = join(dir, 'access.log');
  let offset = 0;
  let partial = '';
  return {
    name: 'nginx',
    url: `http://${NGINX_HOST}:${port}`,
    ledger,
    sync() {
      if (!existsSync(logFile)) return;
      const fd = openSync(logFile, 'r');
      try {
        const buf = Buffer.alloc(1 << 16);
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, offset);
          if (n <= 0) break;
          offset += n;
          partial += buf.subarray(0, n).toString('latin1');
        }
      } finally {
        closeSync(fd);
      }
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line === '') continue;
        const l = JSON.parse(line) as NginxLine;
        const headers: Record<string, string> = {};
        // nginx writes an absent header as an empty string.
        for (const [k, v] of Object.entries(l.headers)) if (v !== '') headers[k] = v;
        ledger.push({ ...l, route: ((l.route as string) === '' ? 'none' : l.route), headers, ip: null, body: null, body_error: l.status === '200' ? null : `nginx ${l.status}` });
      }
    },
    close: () =>
      new Promise<void>((ok) => {
        const finish = () => {
          rmSync(dir, { recursive: true, force: true });
          ok();
        };
        if (child.exitCode !== null || child.signalCode !== null) return finish();
        child.once('exit', finish);
        child.kill('SIGTERM');
      }),
  };
}
