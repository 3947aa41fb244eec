/**
 * Exact bytes on a raw TCP socket: the differential suite must send hostile spellings as
 * they are (an HTTP client library would normalize paths, fold header case, refuse
 * obs-text or fix up the Host), and read every response the gateway writes, pipelined
 * ones included, without trusting that the gateway keeps to one per request.
 */
import { connect } from 'node:net';

export type HeaderValue = string | Buffer;

/** One request as sent: each part written byte for byte. */
export interface WireRequest {
  readonly method: string;
  /** The request target exactly as written on the request line (a case tag is added to its query). */
  readonly target: string;
  readonly version?: string;
  /** In order; names and values as written (a Buffer value carries non-ASCII bytes). */
  readonly headers: ReadonlyArray<readonly [string, HeaderValue]>;
  readonly body?: Buffer | string;
}

/** Adds `c=<tag>` to a target's query (before any fragment), so the upstream's report names the case. */
export function tagTarget(target: string, tag: string): string {
  if (target === '*' || tag === '') return target;
  const hash = target.indexOf('#');
  const head = hash < 0 ? target : target.slice(0, hash);
  const frag = hash < 0 ? '' : target.slice(hash);
  let sep = '?';
  if (head.includes('?')) sep = head.endsWith('?') || head.endsWith('&') ? '' : '&';
  return `${head}${sep}c=${tag}${frag}`;
}

export function serialize(req: WireRequest, tag: string): Buffer {
  const parts: Buffer[] = [Buffer.from(`${req.method} ${tagTarget(req.target, tag)} ${req.version ?? 'HTTP/1.1'}\r\n`, 'latin1')];
  for (const [name, value] of req.headers) {
    parts.push(Buffer.from(`${name}:`, 'latin1'));
    if (typeof value === 'string') parts.push(Buffer.from(value === '' ? '' : ` ${value}`, 'latin1'));
    else parts.push(Buffer.from(' '), value);
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('\r\n'));
  if (req.body !== undefined) parts.push(typeof req.body === 'string' ? Buffer.from(req.body, 'latin1') : req.body);
  return Buffer.concat(parts);
}

/** The authority a request names: an absolute-form target's, else its first Host header. */
export function sentAuthority(req: WireRequest): string | null {
  const m = /^https?:\/\/([^/?#]*)/i.exec(req.target);
  if (m !== null) return m[1] as string;
  const h = req.headers.find(([n]) => n.toLowerCase() === 'host');
  return h === undefined ? null : Buffer.isBuffer(h[1]) ? h[1].toString('latin1') : h[1].trim();
}

/** The query of a target as sent (without `?`, fragment cut), tag included. */
export function sentQuery(req: WireRequest, tag: string): string {
  const t = tagTarget(req.target, tag);
  const hash = t.indexOf('#');
  const head = hash < 0 ? t : t.slice(0, hash);
  const q = head.indexOf('?');
  return q < 0 ? '' : head.slice(q + 1);
}

export interface WireResponse {
  readonly status: number;
  /** Lowercase names; repeated headers joined with ', '. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

export interface WireResult {
  /** Every byte received. */
  readonly bytes: Buffer;
  /** Complete final (non-1xx) responses, in order. */
  readonly responses: WireResponse[];
  /** The server closed (or reset) the connection. */
  readonly closed: boolean;
}

/** Parses as many complete responses as `buf` holds; returns them and the bytes consumed. */
export function parseResponses(buf: Buffer, closed: boolean): { responses: WireResponse[]; used: number } {
  const responses: WireResponse[] = [];
  let pos = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', pos);
    if (end < 0) break;
    const head = buf.subarray(pos, end).toString('latin1');
    const [statusLine, ...lines] = head.split('\r\n');
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine ?? '')?.[1] ?? NaN);
    if (!Number.isFinite(status)) break;
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const name = l.slice(0, i).trim().toLowerCase();
      const value = l.slice(i + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let p = end + 4;
    if (status >= 100 && status < 200 && status !== 101) {
      pos = p;
      continue;
    }
    let body: Buffer;
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (status === 101 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (te !== undefined && /chunked/i.test(te)) {
      const chunks: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', p);
        if (lineEnd < 0) break;
        const size = parseInt(buf.subarray(p, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
          const direct = buf.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n';
          if (direct) p = lineEnd + 4;
          else if (trailerEnd >= 0) p = trailerEnd + 4;
          else break;
          complete = true;
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) break;
        chunks.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(chunks);
    } else if (cl !== undefined) {
      const n = Number(cl);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      // Delimited by the close.
      if (!closed) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status, headers, body });
    pos = p;
    if (status === 101) break; // what follows belongs to the upgraded protocol
  }
  return { responses, used: pos };
}

export interface ExchangeOptions {
  /** Source address (the client the gateway sees). */
  readonly localAddress: string;
  /** Stop once this many final responses are complete. */
  readonly responses: number;
  /** Stop when nothing arrives for this long (a keep-alive connection that stays open). */
  readonly idleMs?: number;
  /** After the last expected response, keep reading until the server closes (or `idleMs` passes). */
  readonly waitClose?: boolean;
  /**
   * Bytes sent in a second write once the first response is complete: "a second request on
   * the same socket" after an answer (an upgrade's, for example).
   */
  readonly second?: Buffer;
}

/** Writes `data` on a fresh connection from `localAddress` and collects what comes back. */
export function exchange(port: number, data: Buffer, opts: ExchangeOptions): Promise<WireResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    let sentSecond = opts.second === undefined;
    const s = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    const idleMs = opts.idleMs ?? 1500;
    let idle: NodeJS.Timeout | null = null;
    const done = (closed: boolean) => {
      if (settled) return;
      settled = true;
      if (idle !== null) clearTimeout(idle);
      s.destroy();
      const bytes = Buffer.concat(chunks);
      resolve({ bytes, responses: parseResponses(bytes, closed).responses, closed });
    };
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      idle?.refresh();
      const { responses } = parseResponses(Buffer.concat(chunks), false);
      if (!sentSecond && responses.length >= 1) {
        sentSecond = true;
        s.write(opts.second as Buffer);
        return;
      }
      if (sentSecond && responses.length >= opts.responses && opts.waitClose !== true) done(false);
    });
    s.on('end', () => done(true));
    s.on('close', () => done(true));
    s.on('error', () => done(true));
    s.on('connect', () => {
      idle = setTimeout(() => done(false), idleMs);
      s.write(data);
    });
  });
}

/** Printable form of bytes for failure messages: ASCII kept, CR LF shown, others as \xNN. */
export function showBytes(b: Buffer, max = 1500): string {
  let s = '';
  for (let i = 0; i < Math.min(b.length, max); i++) {
    const c = b[i] as number;
    if (c === 13) s += '\\r';
    else if (c === 10) s += '\\n\n';
    else if (c === 92) s += '\\\\';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return b.length > max ? `${s}… (${b.length} bytes)` : s;
}
