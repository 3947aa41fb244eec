/**
 * One request at a time per client connection, and nothing after a close.
 *
 * Node's HTTP server parses pipelined requests as they arrive and emits each at once,
 * while their responses are written in order. Left alone, a request pipelined behind one
 * that gatehouse then answers with `Connection: close` (or drops, or that itself said
 * `Connection: close`) would still run every stage and reach the upstream — with no
 * response ever written, no log line and a request counted in flight forever. RFC 9112
 * §9.6: after a close, the server MUST NOT process further requests on that connection.
 *
 * So the pipeline serializes the requests of a connection: the next one starts only when
 * the previous exchange has finished, and once the connection is closing, every request
 * still waiting is finished as `connection_closed` (logged and audited, never processed).
 */
import type { Duplex } from 'node:stream';

const kConnection = Symbol('gatehouse.connection');

export interface QueuedExchange {
  /** Process it now. */
  run(): void;
  /** Finish it unprocessed (the connection is closing). */
  skip(): void;
}

export class ConnectionState {
  /** An exchange of this connection is being processed. */
  private active = false;
  /** No further request of this connection is processed. */
  private closingFlag = false;
  private queue: QueuedExchange[] | null = null;

  constructor(private readonly socket: Duplex) {}

  get closing(): boolean {
    return this.closingFlag || this.socket.destroyed;
  }

  /** True while an exchange of this connection is being processed. */
  get busy(): boolean {
    return this.active;
  }

  /** Runs `item` now, after the exchanges before it, or never (closing). */
  enqueue(item: QueuedExchange): void {
    if (this.closing) return item.skip();
    if (!this.active) {
      this.active = true;
      item.run();
      return;
    }
    (this.queue ??= []).push(item);
  }

  /** The processed exchange finished: start the next one, or finish the rest unprocessed. */
  done(): void {
    this.active = false;
    if (this.closing) {
      this.drain();
      // The server ends a connection after a `Connection: close` answer itself; this covers
      // the cases it does not know about (an upgrade request skipped behind a response).
      if (!this.socket.destroyed && this.socket.writable) this.socket.end();
      return;
    }
    const next = this.queue?.shift();
    if (next !== undefined) {
      this.active = true;
      next.run();
    }
  }

  /** From now on nothing more of this connection is processed. */
  close(): void {
    this.closingFlag = true;
  }

  private drain(): void {
    const q = this.queue;
    this.queue = null;
    if (q !== null) for (const item of q) item.skip();
  }

  /** The socket closed: whatever waits is finished unprocessed. */
  onSocketClose(): void {
    this.closingFlag = true;
    if (!this.active) this.drain();
  }
}

type ConnectionSocket = Duplex & { [kConnection]?: ConnectionState };

export function connectionOf(socket: Duplex): ConnectionState {
  const s = socket as ConnectionSocket;
  let c = s[kConnection];
  if (c === undefined) {
    const state = new ConnectionState(socket);
    s[kConnection] = c = state;
    socket.once('close', () => state.onSocketClose());
  }
  return c;
}

/** The connection's state if a request was seen on it (parser errors before any request have none). */
export function existingConnection(socket: Duplex): ConnectionState | undefined {
  return (socket as ConnectionSocket)[kConnection];
}
