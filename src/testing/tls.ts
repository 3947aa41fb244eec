/**
 * TLS test helpers: a throwaway internal CA, HTTPS requests with the test root as the
 * only trust anchor, raw TLS handshakes, and an HTTPS upstream.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { caPaths, initCa, issueCertificate, loadCa, type Ca, type IssueOptions } from '../pki/ca.js';
import type { Upstream } from './harness.js';

export interface TestCa {
  readonly dir: string;
  readonly caDir: string;
  readonly passwordFile: string;
  readonly ca: Ca;
  readonly rootPem: string;
  issue(opts: IssueOptions): ReturnType<typeof issueCertificate>;
}

export async function createTestCa(): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tls-'));
  const caDir = join(dir, 'ca');
  const passwordFile = join(dir, 'ca-password');
  writeFileSync(passwordFile, 'test ca password\n', { mode: 0o600 });
  await initCa({ dir: caDir, password: 'test ca password' });
  const ca = await loadCa(caDir, 'test ca password');
  return { dir, caDir, passwordFile, ca, rootPem: ca.rootPem, issue: (o) => issueCertificate(ca, o) };
}

export { caPaths };

export interface TlsReply {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly serial: string;
  readonly protocol: string | null;
  readonly cipher: string;
}

/** One HTTPS request to 127.0.0.1:port, SNI `servername`, trusting only `ca`; `cert`/`key` present a client certificate. */
export function httpsGet(port: number, opts: { ca: string; servername?: string; path?: string; method?: string; headers?: Record<string, string>; minVersion?: 'TLSv1.2' | 'TLSv1.3'; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string; cert?: string; key?: string } = { ca: '' }): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const host = opts.servername ?? 'localhost';
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: host,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host, ...opts.headers },
        ca: opts.ca,
        agent: false,
        maxVersion: opts.maxVersion,
        minVersion: opts.minVersion,
        ciphers: opts.ciphers,
        cert: opts.cert,
        key: opts.key,
      },
      (res) => {
        const sock = res.socket as TLSSocket;
        const cert = sock.getPeerCertificate();
        const protocol = sock.getProtocol();
        const cipher = sock.getCipher().name;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), serial: cert.serialNumber?.toUpperCase() ?? '', protocol, cipher }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A bare TLS handshake: resolves with the peer certificate or the handshake error. */
export function handshake(port: number, servername: string | undefined, ca: string, extra: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2'; ciphers?: string; cert?: string; key?: string } = {}): Promise<{ ok: boolean; cert: PeerCertificate | null; error: string | null; socket: TLSSocket }> {
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({ host: '127.0.0.1', port, servername, ca, ...extra });
    const done = (ok: boolean, error: string | null) => {
      if (settled) return;
      settled = true;
      const cert = socket.getPeerCertificate();
      resolve({ ok, cert: cert && Object.keys(cert).length > 0 ? cert : null, error, socket });
    };
    socket.once('secureConnect', () => done(true, null));
    socket.once('error', (e: NodeJS.ErrnoException) => done(false, e.code ?? e.message));
    socket.once('close', () => done(false, 'closed'));
  });
}

/** Sends an HTTP/1.1 request on an open TLS socket and reads one response (keep-alive). */
export function requestOn(socket: TLSSocket, host: string, path = '/'): Promise<{ status: number; raw: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const m = /content-length: *(\d+)/i.exec(buf.slice(0, end));
      const len = m ? Number(m[1]) : 0;
      if (buf.length - end - 4 < len) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve({ status: Number(buf.slice(9, 12)), raw: buf });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

/** An HTTPS upstream that echoes what it saw, including the client certificate's CN. */
export async function startHttpsUpstream(opts: { cert: string; key: string; ca?: string; requireClientCert?: boolean }): Promise<Upstream & { server: HttpsServer }> {
  const seen: Upstream['seen'] = [];
  const server = createHttpsServer({ cert: opts.cert, key: opts.key, ca: opts.ca, requestCert: opts.requireClientCert ?? false, rejectUnauthorized: opts.requireClientCert ?? false }, (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const body = JSON.stringify({ url: req.url, client_cn: peer?.subject?.CN ?? null, client_serial: peer?.serialNumber?.toUpperCase() ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as AddressInfo).port;
  return {
    server: server as unknown as HttpsServer & Upstream['server'],
    port,
    url: `https://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
