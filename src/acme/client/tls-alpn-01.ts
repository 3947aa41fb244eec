/**
 * The tls-alpn-01 responder (RFC 8737): the CA opens a TLS connection to the name on port
 * 443 offering only the ALPN protocol `acme-tls/1`, and expects a self-signed certificate
 * for that name carrying the acmeIdentifier extension (the SHA-256 of the key
 * authorization). Such a connection must never reach the sites, and a normal client must
 * never see the challenge certificate, so the choice is made before the handshake: while a
 * challenge is pending, the listener peeks at each ClientHello (client-hello.ts); a hello
 * whose ALPN list is exactly `acme-tls/1` is handed to a private TLS server that presents
 * the challenge certificate and closes after the handshake; any other hello goes on to the
 * listener untouched. With no challenge pending, connections are handed on at once, at no
 * cost.
 *
 * This is the one place that routes on ALPN before the listener's own ALPN selection
 * (`h2`, `http/1.1`), which it does not touch.
 */
import type { Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type Server as TlsServer } from 'node:tls';
import { MAX_HELLO_BYTES, parseClientHello, type ClientHelloInfo } from './client-hello.js';

export const ACME_TLS_ALPN = 'acme-tls/1';

/** Whether a hello is a tls-alpn-01 validation: RFC 8737 §3 has the CA offer `acme-tls/1` and nothing else. */
export function isAlpnChallengeHello(hello: ClientHelloInfo): boolean {
  return hello.alpn.length === 1 && hello.alpn[0] === ACME_TLS_ALPN;
}

type ConnectionListener = (this: TlsServer, socket: Socket) => void;

export class TlsAlpnResponder {
  private readonly contexts = new Map<string, SecureContext>();
  private readonly challengeServer: TlsServer;

  constructor(private readonly handshakeTimeoutMs: number) {
    this.challengeServer = createTlsServer({
      ALPNProtocols: [ACME_TLS_ALPN],
      minVersion: 'TLSv1.2',
      handshakeTimeout: handshakeTimeoutMs,
      SNICallback: (name, cb) => {
        const ctx = this.contexts.get(name.toLowerCase().replace(/\.$/, ''));
        if (ctx) cb(null, ctx);
        else cb(new Error('no tls-alpn-01 challenge for this name'), undefined);
      },
    });
    // The validation is the handshake itself: nothing is read or written after it.
    this.challengeServer.on('secureConnection', (s) => s.end());
    this.challengeServer.on('tlsClientError', (_err, s) => s.destroy());
  }

  add(name: string, certPem: string, keyPem: string): void {
    this.contexts.set(name, createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' }));
  }

  remove(name: string): void {
    this.contexts.delete(name);
  }

  get pending(): number {
    return this.contexts.size;
  }

  /**
   * Puts the ClientHello check in front of a TLS server's own connection handling. Call
   * it right after the server is created, before other 'connection' listeners are added.
   */
  attach(server: TlsServer): void {
    const own = server.listeners('connection') as ConnectionListener[];
    server.removeAllListeners('connection');
    const handOn = (socket: Socket) => {
      for (const l of own) l.call(server, socket);
    };
    server.on('connection', (socket: Socket) => {
      if (this.contexts.size === 0) return handOn(socket);
      this.peek(socket, (hello) => {
        if (hello !== null && isAlpnChallengeHello(hello)) this.challengeServer.emit('connection', socket);
        else handOn(socket);
      });
    });
  }

  /** Reads the first record, puts it back, and calls `done` with what it says (null: not a parsable hello). */
  private peek(socket: Socket, done: (hello: ClientHelloInfo | null) => void): void {
    let buf: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (hello: ClientHelloInfo | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (buf.length > 0) socket.unshift(buf);
      if (socket.destroyed) return;
      done(hello);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf);
      if (r === 'more' && buf.length < MAX_HELLO_BYTES) return;
      finish(r === 'more' ? null : r);
    };
    const onEnd = () => finish(null);
    // A client that sends nothing is handed on, and the listener's own handshake timeout applies.
    const timer = setTimeout(() => finish(null), this.handshakeTimeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
  }

  close(): void {
    this.contexts.clear();
    this.challengeServer.close();
  }
}
