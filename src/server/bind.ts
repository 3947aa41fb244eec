/**
 * Listeners bound before the gateway exists (docs/deploy.md#privileges). `run` started as
 * root binds every listen address here — low ports need root or CAP_NET_BIND_SERVICE —
 * then drops privileges, and only then builds the gateway (secrets, stores, TLS). The
 * gateway's HTTP(S) servers adopt the bound sockets (`server.listen(handle)`), so the
 * unprivileged process never needs to bind anything.
 *
 * In between, the kernel may complete connections; they are accepted paused (not one
 * byte read) and handed to the real server once it exists, where they go through the
 * connection-level IP filter like any other. Nothing reaches the request pipeline before
 * start-up has finished, and a start-up that fails closes them.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { parseListenAddress } from './address.js';

interface Placeholder {
  readonly server: Server;
  readonly pending: Socket[];
}

export class BoundListeners {
  private readonly byKey = new Map<string, Placeholder>();

  private constructor() {}

  /** Binds `listen[i]` (key `listen[i]`) and the admin listener (key `admin`). Closes what it bound if one fails. */
  static async bind(config: Pick<Config, 'listen' | 'admin'>): Promise<BoundListeners> {
    const b = new BoundListeners();
    const wanted: Array<[string, string]> = config.listen.map((l, i) => [`listen[${i}]`, l.address]);
    if (config.admin.enabled) wanted.push(['admin', config.admin.listen]);
    try {
      for (const [key, address] of wanted) {
        const addr = parseListenAddress(address);
        if (!addr) throw new Error(`bad listen address ${address}`);
        const pending: Socket[] = [];
        const server = createServer({ pauseOnConnect: true }, (s) => {
          pending.push(s);
          s.once('close', () => pending.splice(pending.indexOf(s) >>> 0, 1));
          s.on('error', () => undefined);
        });
        await new Promise<void>((ok, fail) => {
          server.once('error', fail);
          // ':port' (host '') listens on every interface, as the gateway itself does.
          server.listen(addr.port, addr.host === '' ? undefined : addr.host, () => {
            server.off('error', fail);
            ok();
          });
        });
        b.byKey.set(key, { server, pending });
      }
    } catch (err) {
      b.close();
      const hint = (err as NodeJS.ErrnoException).code === 'EACCES' ? ' (a port below 1024 needs root or CAP_NET_BIND_SERVICE)' : '';
      throw new Error(`${(err as Error).message}${hint}`);
    }
    return b;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /**
   * Makes `server` serve on the socket bound for `key`: it takes over the listening
   * handle, then gets the connections accepted meanwhile (its 'connection' listeners —
   * the IP filter — see them as usual).
   */
  async adopt(key: string, server: import('node:net').Server): Promise<void> {
    const p = this.byKey.get(key);
    if (!p) throw new Error(`no bound listener ${key}`);
    this.byKey.delete(key);
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(p.server, () => {
        server.off('error', fail);
        ok();
      });
    });
    p.server.removeAllListeners('connection');
    for (const s of p.pending.splice(0)) {
      if (s.destroyed) continue;
      server.emit('connection', s);
      s.resume();
    }
  }

  /** Closes every listener not adopted, and the connections waiting on it. */
  close(): void {
    for (const p of this.byKey.values()) {
      for (const s of p.pending) s.destroy();
      p.server.close();
    }
    this.byKey.clear();
  }
}
