/**
 * The distributed revocation store. Every instance keeps the whole set in memory and
 * learns new revocations by push; a sequence number makes the push lossless:
 *
 *   <prefix>rev:seq    INCR counter: every revocation gets the next number
 *   <prefix>rev:log    sorted set, score = seq, member = "seq|expiresAt|entry-json"
 *   <prefix>rev:epoch  random id of this Redis data set (changes if Redis lost its data)
 *   channel <prefix>rev:events   "epoch|member" published for every revocation
 *
 * A writer runs one Lua script (INCR, ZADD, PUBLISH, prune expired members): all or
 * nothing. A reader applies pushed entries; a sequence gap, a different epoch, a
 * (re)connect of the subscriber, and a poll every `pollIntervalMs` each trigger a sync
 * that reads `seq`, `epoch` and every log member after the last seen seq in one script —
 * so a lost push is found at the latest by the next poll, and none can be missed.
 * If the epoch changed (Redis restarted without persistence, or was flushed) the
 * instance writes its live entries back (idempotent merge) before reading the new log:
 * revocations survive a Redis restart while any instance is alive.
 *
 * `current()` is true while the last successful sync is younger than max_staleness.
 * Writer and reader share this module and `keys()`, so their key layout cannot differ.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { reconnectDelay, redisModule } from '../rate-limit/redis-client.js';
import { RevocationSet } from './set.js';
import { isEntry, type RevocationEntry, type RevocationStore } from './types.js';

export interface RedisRevocationStoreOptions {
  /** Command client (createRedisClient: fails fast when Redis is down). */
  readonly client: Redis;
  /** Connection options for the dedicated subscriber connection. */
  readonly subscriber: { url: string; password?: string; connectTimeoutMs?: number; tls?: import('node:tls').ConnectionOptions };
  /** Key prefix, e.g. `gatehouse:` → `gatehouse:rev:seq`. */
  readonly prefix: string;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs?: number;
  readonly now?: () => number;
  /** Called when something noteworthy happens (resync, reseed); for logs. */
  readonly onEvent?: (event: string, fields: Record<string, unknown>) => void;
}

export function revocationKeys(prefix: string): { seq: string; log: string; epoch: string; channel: string } {
  return { seq: `${prefix}rev:seq`, log: `${prefix}rev:log`, epoch: `${prefix}rev:epoch`, channel: `${prefix}rev:events` };
}

// KEYS: seq, log, epoch. ARGV: expiresAt, entry json, now, channel, epoch candidate.
const ADD = `
redis.call('SET', KEYS[3], ARGV[5], 'NX')
local epoch = redis.call('GET', KEYS[3])
local seq = redis.call('INCR', KEYS[1])
local member = seq .. '|' .. ARGV[1] .. '|' .. ARGV[2]
redis.call('ZADD', KEYS[2], seq, member)
local now = tonumber(ARGV[3])
local old = redis.call('ZRANGE', KEYS[2], 0, 99)
for _, m in ipairs(old) do
  local exp = tonumber(string.match(m, '^%d+|(%d+)|'))
  if exp ~= nil and exp <= now then redis.call('ZREM', KEYS[2], m) end
end
redis.call('PUBLISH', ARGV[4], epoch .. '|' .. member)
return {epoch, seq}
`;

// KEYS: seq, log, epoch. ARGV: after seq, epoch candidate. Returns {epoch, seq, members...}.
// The epoch is created if missing, so an empty Redis gets a new identity exactly once.
const SYNC = `
redis.call('SET', KEYS[3], ARGV[2], 'NX')
local epoch = redis.call('GET', KEYS[3])
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {epoch, seq}
local ms = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
for _, m in ipairs(ms) do out[#out + 1] = m end
return out
`;

type RevRedis = Redis & {
  gatehouseRevAdd(seq: string, log: string, epoch: string, exp: string, json: string, now: string, channel: string, candidate: string): Promise<[string, number]>;
  gatehouseRevSync(seq: string, log: string, epoch: string, after: string, candidate: string): Promise<[string, number, ...string[]]>;
};

function parseMember(m: string): { seq: number; entry: RevocationEntry } | null {
  const a = m.indexOf('|');
  const b = m.indexOf('|', a + 1);
  if (a < 0 || b < 0) return null;
  const seq = Number(m.slice(0, a));
  let entry: unknown;
  try {
    entry = JSON.parse(m.slice(b + 1));
  } catch {
    return null;
  }
  return Number.isInteger(seq) && isEntry(entry) ? { seq, entry } : null;
}

export function createRedisRevocationStore(opts: RedisRevocationStoreOptions): RevocationStore {
  const now = opts.now ?? Date.now;
  const k = revocationKeys(opts.prefix);
  const client = opts.client as RevRedis;
  if (typeof client.gatehouseRevAdd !== 'function') {
    client.defineCommand('gatehouseRevAdd', { numberOfKeys: 3, lua: ADD });
    client.defineCommand('gatehouseRevSync', { numberOfKeys: 3, lua: SYNC });
  }
  const set = new RevocationSet();
  let epoch: string | null = null;
  let lastSeq = 0;
  let confirmedAt = -Infinity;
  let syncing: Promise<void> | null = null;
  let again = false;
  let closed = false;
  const pollMs = opts.pollIntervalMs ?? Math.max(100, Math.min(1000, Math.floor(opts.maxStalenessMs / 4)));

  const sub = new (redisModule().Redis)(opts.subscriber.url, {
    ...(opts.subscriber.password !== undefined ? { password: opts.subscriber.password } : {}),
    ...(opts.subscriber.tls !== undefined ? { tls: opts.subscriber.tls } : {}),
    connectTimeout: opts.subscriber.connectTimeoutMs ?? 2000,
    retryStrategy: reconnectDelay,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
  });
  sub.on('error', () => {});
  // (Re)connected and resubscribed: whatever was published meanwhile is in the log.
  sub.on('ready', () => void sync('subscriber_ready'));
  sub.on('message', (_channel: string, msg: string) => {
    const bar = msg.indexOf('|');
    const msgEpoch = msg.slice(0, bar);
    const parsed = parseMember(msg.slice(bar + 1));
    if (parsed === null) return;
    // Applying is idempotent, so a push is used at once even when a sync must follow.
    set.apply(parsed.entry);
    if (msgEpoch !== epoch) void sync('epoch_changed');
    else if (parsed.seq === lastSeq + 1) lastSeq = parsed.seq;
    else if (parsed.seq > lastSeq + 1) void sync('sequence_gap');
  });

  async function add(e: RevocationEntry): Promise<void> {
    await client.gatehouseRevAdd(k.seq, k.log, k.epoch, String(e.expiresAt), JSON.stringify(e), String(now()), k.channel, randomUUID());
  }

  async function syncOnce(reason: string): Promise<void> {
    const res = await client.gatehouseRevSync(k.seq, k.log, k.epoch, String(lastSeq), randomUUID());
    const [ep, seq] = res;
    if (epoch !== null && ep !== epoch) {
      // Redis lost its data (restart without persistence, flush): write back what we know
      // (merging is idempotent, other instances do the same), then read the new log from
      // its start.
      const live = set.list(now());
      opts.onEvent?.('revocation_reseed', { entries: live.length, reason });
      for (const e of live) await add(e);
      epoch = ep;
      lastSeq = 0;
      return syncOnce(reason);
    }
    epoch = ep;
    for (let i = 2; i < res.length; i++) {
      const p = parseMember(res[i] as string);
      if (p !== null) set.apply(p.entry);
    }
    if (seq > lastSeq) lastSeq = seq;
    confirmedAt = now();
  }

  function sync(reason: string): Promise<void> {
    if (closed) return Promise.resolve();
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = (async () => {
      try {
        do {
          again = false;
          await syncOnce(reason);
        } while (again);
      } catch {
        // Not current until a later sync succeeds (current() turns false after max_staleness).
      } finally {
        syncing = null;
      }
    })();
    return syncing;
  }

  let timer: NodeJS.Timeout | null = null;
  return {
    kind: 'redis',
    async start() {
      // Subscribing waits for a connection; do not let an unreachable Redis block start-up
      // (the set is simply not current until it connects).
      const subscribed = sub.subscribe(k.channel).catch(() => undefined);
      // The command client fails fast while it is not connected, so the first sync would
      // fail (and the set stay empty until the next poll) if it ran before the client's
      // own connection is up: wait for that too, within the same bound.
      const clientReady = client.status === 'ready' ? Promise.resolve() : new Promise<void>((ok) => client.once('ready', () => ok()));
      await Promise.race([Promise.all([subscribed, clientReady]), new Promise((ok) => setTimeout(ok, opts.subscriber.connectTimeoutMs ?? 2000).unref())]);
      await sync('start');
      timer = setInterval(() => void sync('poll'), pollMs);
      timer.unref();
    },
    async add(e) {
      await add(e);
      set.apply(e);
    },
    list: (t) => set.list(t),
    revoked: (j, s, iat, t) => set.revoked(j, s, iat, t),
    current: (t) => t - confirmedAt <= opts.maxStalenessMs,
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      sub.disconnect();
    },
  };
}
