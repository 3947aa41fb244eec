/**
 * HTTP/2 test clients: node:http2 for well-formed requests, and a raw frame writer for
 * what node:http2 refuses to send (uppercase names, connection headers, floods).
 */
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface H2Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly trailers: IncomingHttpHeaders | null;
  /** RST_STREAM code when the stream was reset instead of answered. */
  readonly rstCode: number | null;
}

export function h2Session(port: number, opts: { ca: string; servername?: string; localAddress?: string }): Promise<ClientHttp2Session> {
  return new Promise((ok, fail) => {
    // localAddress is passed on to tls.connect (node:http2's types leave it out).
    const options = { ca: opts.ca, servername: opts.servername ?? 'localhost', localAddress: opts.localAddress } as import('node:http2').SecureClientSessionOptions;
    const s = h2connect(`https://127.0.0.1:${port}`, options);
    s.once('connect', () => {
      s.off('error', fail);
      ok(s);
    });
    s.once('error', fail);
  });
}

/** One request on `session`; `headers` may carry pseudo-headers (`:authority`, `:path`, …). */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer | null, endStream = body === undefined || body === null): Promise<H2Reply> {
  return new Promise((ok, fail) => {
    const req = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream });
    let status = 0;
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | null = null;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      head = h;
      status = Number(h[':status']);
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_HTTP2_STREAM_ERROR') return;
      fail(err);
    });
    req.on('close', () => ok({ status, headers: head, body: Buffer.concat(chunks).toString('utf8'), trailers, rstCode: status === 0 ? req.rstCode ?? null : null }));
    if (!endStream) req.end(body ?? undefined);
  });
}

// ---- raw frames -------------------------------------------------------------------

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** HPACK: every field as "literal without indexing, new name", no Huffman — any name bytes, as given. */
export function hpack(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v);
  }
  return Buffer.concat(parts);
}

export function rstStream(stream: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

export interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** A TLS connection speaking raw HTTP/2 frames: it sends the preface and an empty SETTINGS. */
export class RawH2 {
  readonly frames: RawFrame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private constructor(readonly socket: TLSSocket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {
      this.closed = true;
    });
  }

  static open(port: number, ca: string, servername = 'localhost'): Promise<RawH2> {
    return new Promise((ok, fail) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername, ALPNProtocols: ['h2'] }, () => {
        if (socket.alpnProtocol !== 'h2') return fail(new Error(`ALPN gave ${String(socket.alpnProtocol)}`));
        const c = new RawH2(socket);
        socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
        // Ready once both SETTINGS are exchanged: the server's limits then apply as advertised.
        void c.until(() => c.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0)).then(() => ok(c));
      });
      socket.once('error', fail);
    });
  }

  write(b: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    return this.socket.write(b);
  }

  /** HEADERS (END_HEADERS, END_STREAM unless `open`) with the given fields on `stream`. */
  headers(stream: number, fields: ReadonlyArray<readonly [string, string]>, open = false): boolean {
    return this.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | (open ? 0 : FLAG.END_STREAM), stream, hpack(fields)));
  }

  /** The GOAWAY error code the server sent, or null. */
  goaway(): number | null {
    const g = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return g ? g.payload.readUInt32BE(4) : null;
  }

  /** The server's SETTINGS values (first SETTINGS frame), by identifier. */
  settings(): Map<number, number> {
    const m = new Map<number, number>();
    const f = this.frames.find((x) => x.type === FRAME.SETTINGS && (x.flags & FLAG.ACK) === 0);
    if (f) for (let i = 0; i + 6 <= f.payload.length; i += 6) m.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
    return m;
  }

  /** RST_STREAM code the server sent for `stream`, or null. */
  reset(stream: number): number | null {
    const r = this.frames.find((f) => f.type === FRAME.RST_STREAM && f.stream === stream);
    return r ? r.payload.readUInt32BE(0) : null;
  }

  /** Whether the server sent a HEADERS frame (an answer) on `stream`. */
  responded(stream: number): boolean {
    return this.frames.some((f) => f.type === FRAME.HEADERS && f.stream === stream);
  }

  async until(pred: () => boolean, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f = { type: this.buf[3] as number, flags: this.buf[4] as number, stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
      this.frames.push(f);
      // Acknowledge the server's SETTINGS, as a client must before they fully apply.
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) this.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      this.buf = this.buf.subarray(9 + len);
    }
  }
}

export const H2 = constants;
