/**
 * The in-memory view of the identity registry the request path reads. It re-reads the
 * whole registry when the store's change counter moves, checked every
 * `identities.refresh_interval` (and at once when `nudge()` is called — by a Redis push
 * when state.store is redis). So a suspension made anywhere takes effect on every
 * instance within one refresh interval (plus one query), or at push latency with Redis.
 *
 * When the view could not be refreshed for longer than `identities.max_staleness` (or
 * was never loaded), `current()` is false and authenticated requests are refused (503).
 */
import type { IdentityRecord, IdentityStore } from './types.js';

export interface IdentityView {
  get(subject: string): IdentityRecord | undefined;
  /** The identity's stored (encrypted) upstream credential, if any. */
  credential(subject: string): string | undefined;
  current(nowMs: number): boolean;
  /** Re-check the store now (a change was announced). */
  nudge(): void;
  start(): Promise<void>;
  close(): void;
}

export function createIdentityView(store: IdentityStore, opts: { refreshMs: number; maxStalenessMs: number; now?: () => number }): IdentityView {
  const now = opts.now ?? Date.now;
  let map = new Map<string, IdentityRecord>();
  let creds = new Map<string, string>();
  let version = -1;
  let confirmedAt = -Infinity;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;

  async function refreshOnce(): Promise<void> {
    const v = await store.version();
    if (v !== version) {
      const [list, c] = await Promise.all([store.list(), store.credentials()]);
      map = new Map(list.map((r) => [r.subject, r]));
      creds = c;
      version = v;
    }
    confirmedAt = now();
  }

  function refresh(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await refreshOnce();
        } while (again);
      } catch {
        // Stale until a refresh succeeds; current() says so after max_staleness.
      } finally {
        running = null;
      }
    })();
    return running;
  }

  return {
    get: (s) => map.get(s),
    credential: (s) => creds.get(s),
    current: (t) => t - confirmedAt <= opts.maxStalenessMs,
    nudge: () => void refresh(),
    async start() {
      await refresh();
      timer = setInterval(() => void refresh(), opts.refreshMs);
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
    },
  };
}
