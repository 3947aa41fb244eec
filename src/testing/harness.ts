/**
 * Integration-test harness: a real upstream server and a real gateway on ephemeral ports,
 * talking over loopback. Nothing is mocked; the clock for rate limits can be injected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { Gateway } from '../server/gateway.js';

export const BIN = fileURLToPath(new URL('../../bin/gatehouse.js', import.meta.url));

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  /** Requests seen, in order (method, url, headers). */
  readonly seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[] }>;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The default upstream: echoes what it received as JSON, with a Server header to strip. */
export const echoHandler: UpstreamHandler = (req, res) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes });
    res.writeHead(200, { 'content-type': 'application/json', server: 'upstream/1.0', 'x-powered-by': 'test', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};

export async function startUpstream(handler: UpstreamHandler = echoHandler): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    handler(req, res);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

export interface TestGateway {
  readonly gw: Gateway;
  readonly port: number;
  readonly url: string;
  readonly adminUrl: string;
  readonly file: string;
  /** Parsed JSON log lines. */
  readonly logs: Array<Record<string, unknown>>;
  /** Rewrites the config file (for reload tests). */
  write(config: unknown): void;
  close(): Promise<void>;
}

/** A minimal config: one site `app` for host 127.0.0.1/localhost in front of `upstreamUrl`. */
export function baseConfig(upstreamUrl: string, site: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: [{ address: '127.0.0.1:0' }],
    admin: { listen: '127.0.0.1:0' },
    log: { level: 'info' },
    sites: [{ id: 'app', hosts: ['127.0.0.1', 'localhost'], upstream: { urls: [upstreamUrl] }, ...site }],
    // `top` may replace any of the above, including `sites`.
    ...top,
  };
}

export function writeConfig(config: unknown, dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'))): string {
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

export async function startGateway(config: unknown, opts: { now?: () => number; watch?: boolean } = {}): Promise<TestGateway> {
  const file = writeConfig(config);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, sink);
  const gw = await Gateway.start({ loaded: loadConfig(file), logger, now: opts.now, watch: opts.watch ?? false });
  const a = gw.addresses();
  const port = (a.public[0] as AddressInfo).port;
  return {
    gw,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: a.admin ? `${gw.config.admin.tls ? 'https' : 'http'}://127.0.0.1:${a.admin.port}` : '',
    file,
    logs,
    write: (c) => writeFileSync(file, typeof c === 'string' ? c : stringify(c)),
    close: () => gw.close(2000),
  };
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
  readonly body: string;
}

/** One HTTP request on a fresh connection (no keep-alive pooling between tests). */
/**
 * Waits until an instance answers /readyz with 200 (its stores reachable), as a load
 * balancer would before sending it traffic. Throws with the last reason after `ms`.
 */
export async function waitReady(adminPort: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      const r = await request(`http://127.0.0.1:${adminPort}/readyz`);
      if (r.status === 200) return;
      last = `${r.status} ${r.body}`;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`instance on admin port ${adminPort} not ready after ${ms} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function request(url: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Sends raw bytes and collects everything until the server closes (or `timeoutMs`). */
export function rawExchange(port: number, data: string | Buffer, timeoutMs = 3000): Promise<{ bytes: Buffer; closed: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s: Socket = connect(port, '127.0.0.1');
    let settled = false;
    const done = (closed: boolean, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed, error });
    };
    const t = setTimeout(() => done(false, null), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => done(true, null));
    s.on('close', () => done(true, null));
    s.on('error', (e: NodeJS.ErrnoException) => done(true, e.code ?? e.message));
    s.on('connect', () => s.write(data));
  });
}

/** Security headers every answer must carry (lowercase names, exact values); HTTPS answers also carry HSTS. */
export const SECURITY_HEADERS: Record<string, string> = {
  'x-frame-options': 'SAMEORIGIN',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'permissions-policy': 'geolocation=(), microphone=(), camera=()',
};

/** The default Strict-Transport-Security, sent only when the client's connection is HTTPS (RFC 6797 §7.2). */
export const HSTS = 'max-age=31536000; includeSubDomains; preload';

/** Parses a raw HTTP/1.1 response head. */
export function parseHead(bytes: Buffer): { status: number; headers: Record<string, string>; body: string } {
  const text = bytes.toString();
  const end = text.indexOf('\r\n\r\n');
  const head = end >= 0 ? text.slice(0, end) : text;
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number((statusLine ?? '').split(' ')[1] ?? 0), headers, body: end >= 0 ? text.slice(end + 4) : '' };
}

/** Starts `gatehouse run` as a child process and waits until it listens. */
/**
 * As root (CI), `gatehouse run` refuses to serve without process.user; these tests are
 * about other things, so they opt in explicitly (the privilege drop has its own tests).
 */
export function asTestProcess(config: unknown): unknown {
  if (process.getuid?.() !== 0 || config === null || typeof config !== 'object' || 'process' in config) return config;
  return { ...config, process: { serve_as_root: true } };
}

export async function spawnGateway(config: unknown): Promise<{ child: ChildProcess; file: string; port: number; adminPort: number; output: () => string; stop(signal?: NodeJS.Signals): Promise<number | null> }> {
  const file = writeConfig(asTestProcess(config));
  const child = spawn(process.execPath, [BIN, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const t = setTimeout(() => {
      // Never leave a half-started gateway behind (it would keep the test file alive).
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start:\n${out}`));
    }, 15000);
    const check = () => {
      for (const line of out.split('\n')) {
        if (line.includes('"event":"listening"')) {
          clearTimeout(t);
          child.stdout?.off('data', check);
          resolve(JSON.parse(line) as Record<string, unknown>);
          return;
        }
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited (${code}):\n${out}`));
    });
  });
  const port = Number(String((listening.listen as string[])[0]).split(':').pop());
  const adminPort = Number(String(listening.admin ?? ':0').split(':').pop());
  return {
    child,
    file,
    port,
    adminPort,
    output: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
