/**
 * Distributed rate-limit store on Redis: one sorted set per key, scored by the timestamp
 * (ms) of each accepted hit.
 *
 * Atomicity and round trips: a decision covers several rules (e.g. "100/min per IP" and
 * "10/min per login") and must be all-or-nothing: if any enforced rule is full, no rule
 * records the hit. Doing that with separate commands would need WATCH/MULTI retries or
 * several round trips, and concurrent gateways could interleave between "count" and
 * "add" and overfill a window. A Lua script runs atomically on the server (no other
 * command executes while it runs), so the check-then-record over all the keys of the
 * decision happens in ONE round trip (EVALSHA; after a server restart or SCRIPT FLUSH the
 * first call gets NOSCRIPT and falls back to EVAL, which loads the script again).
 *
 * Time source: with `timeSource: 'redis'` (default) the script reads the server clock
 * (`TIME`), so every gateway instance sharing this Redis uses ONE clock; skew between
 * gateway hosts then cannot let a fast-clock instance count hits as already expired or a
 * slow one record hits "in the past". With `'caller'` the script uses the `nowMs`
 * argument (deterministic: the contract and property tests rely on it).
 *
 * Semantics are identical to the memory store (memory.ts); the contract suite and the
 * model-based property test run against both.
 *
 * Redis Cluster: all the keys of one decision are passed to one script, so on a cluster
 * they must hash to the same slot (hash tags); this store targets a single Redis
 * (standalone, or Sentinel-managed) as injected by the caller.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateDecision, RateHit, RateLimitStore, RuleOutcome } from './types.js';

export interface RedisRateLimitStoreOptions {
  /** Injected client; the caller owns it (close() does not quit it). */
  client: Redis;
  /** Prepended to every key (default 'gatehouse:rl:'). */
  prefix?: string;
  /** Whose clock decides (default 'redis'). */
  timeSource?: 'redis' | 'caller';
  /** Told whether each command reached Redis (dependency state: a timeout on an open connection is an outage too). */
  health?: { up(): void; down(err?: unknown): void };
}

/**
 * In 'caller' mode, entry timestamps are on the caller's clock while PEXPIRE counts on the
 * Redis server's clock. Those clocks are unrelated (skew between gateway hosts, a
 * synthetic clock in tests), so a TTL of exactly W could delete a key whose entries are
 * still inside the caller's window: a silent, lenient loss. The TTL is only garbage
 * collection (ZREMRANGEBYSCORE does the real expiry), so give it a generous margin.
 */
const CALLER_TTL_SLACK_MS = 60_000;

/*
 * KEYS[i]   one sorted set per rule of the decision (distinct keys)
 * ARGV[1]   'redis' | 'caller'
 * ARGV[2]   caller's now (ms; ignored in 'redis' mode)
 * ARGV[3]   member suffix, unique per decision across all gateway instances
 * ARGV[4]   TTL slack (ms) added to W for PEXPIRE
 * ARGV[2+3i], ARGV[3+3i], ARGV[4+3i]   limit, windowMs, enforce ('1' | '0') of KEYS[i]
 * Returns  { allowed, room_1, remaining_1, resetMs_1, room_2, ... } (integers)
 *
 * Phase 1 evaluates every rule (dropping entries that left the half-open window
 * (now-W, now] and, if the limit was lowered by a config reload, entries beyond the newest
 * `limit`, exactly like the memory store's ring buffer); phase 2 records the hit in every
 * rule with room, but only if no enforced rule is full. Members are unique so that two
 * hits in the same millisecond are two entries (a sorted set would merge equal members).
 */
const SCRIPT = `
local now
if ARGV[1] == 'redis' then
  -- Redis < 5 only allows writes after TIME with effects replication; 5+ always uses it.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local slack = tonumber(ARGV[4])
local n = #KEYS
local counts = {}
local allowed = 1
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 + 3 * i])
  local w = tonumber(ARGV[3 + 3 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
  local c = redis.call('ZCARD', key)
  if c > limit then
    redis.call('ZREMRANGEBYRANK', key, 0, c - limit - 1)
    c = limit
  end
  counts[i] = c
  if ARGV[4 + 3 * i] == '1' and c >= limit then allowed = 0 end
end
local out = { allowed }
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 + 3 * i])
  local w = tonumber(ARGV[3 + 3 * i])
  local c = counts[i]
  local room = 0
  if c < limit then room = 1 end
  if allowed == 1 and room == 1 then
    redis.call('ZADD', key, now, ARGV[3] .. ':' .. i)
    c = c + 1
  end
  local reset = 0
  if c > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + w - now
    -- Refreshed on every decision (not only on ZADD) so that a window made longer by a
    -- config reload never lets Redis drop entries the new window still counts.
    redis.call('PEXPIRE', key, w + slack)
  end
  out[#out + 1] = room
  out[#out + 1] = limit - c
  out[#out + 1] = reset
end
return out
`;

const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

export function createRedisRateLimitStore(opts: RedisRateLimitStoreOptions): RateLimitStore {
  const { client } = opts;
  const prefix = opts.prefix ?? 'gatehouse:rl:';
  const timeSource = opts.timeSource ?? 'redis';
  if (timeSource !== 'redis' && timeSource !== 'caller') throw new RangeError("timeSource must be 'redis' or 'caller'");
  const slack = timeSource === 'caller' ? CALLER_TTL_SLACK_MS : 0;
  // Unique members: a random per-store id (96 bits, so instances never collide) plus a
  // per-store sequence number.
  const instanceId = randomBytes(12).toString('base64url');
  let seq = 0;
  let closed = false;

  async function run(numKeys: number, args: (string | number)[]): Promise<unknown> {
    let reply: unknown;
    try {
      try {
        reply = await client.evalsha(SCRIPT_SHA, numKeys, ...args);
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
        reply = await client.eval(SCRIPT, numKeys, ...args);
      }
    } catch (err) {
      opts.health?.down(err);
      throw err;
    }
    opts.health?.up();
    return reply;
  }

  async function hit(hits: readonly RateHit[], nowMs: number): Promise<RateDecision> {
    if (closed) throw new Error('rate-limit store is closed');
    // Fail fast: never queue a decision behind a reconnect, even if the injected client
    // has an offline queue (createRedisClient disables it; this guards other clients).
    if (client.status !== 'ready') throw new Error(`redis rate-limit store not ready (connection ${client.status})`);
    if (timeSource === 'caller' && !Number.isSafeInteger(nowMs)) throw new RangeError('nowMs must be an integer');
    const n = hits.length;
    if (n === 0) return { allowed: true, rules: [] };
    const args: (string | number)[] = new Array<string | number>(n + 4 + 3 * n);
    for (let i = 0; i < n; i++) {
      const h = hits[i] as RateHit;
      if (!Number.isInteger(h.limit) || h.limit < 1 || !Number.isInteger(h.windowMs) || h.windowMs < 1) {
        throw new RangeError('invalid rate rule: limit and windowMs must be integers >= 1');
      }
      for (let j = 0; j < i; j++) {
        if ((hits[j] as RateHit).key === h.key) throw new RangeError('duplicate rate key in one decision');
      }
      args[i] = prefix + h.key;
      args[n + 4 + 3 * i] = h.limit;
      args[n + 5 + 3 * i] = h.windowMs;
      args[n + 6 + 3 * i] = h.enforce ? '1' : '0';
    }
    args[n] = timeSource;
    args[n + 1] = timeSource === 'caller' ? nowMs : 0;
    args[n + 2] = `${instanceId}:${++seq}`;
    args[n + 3] = slack;

    const reply = await run(n, args);
    if (!Array.isArray(reply) || reply.length !== 1 + 3 * n) throw new Error('unexpected reply from rate-limit script');
    const rules = new Array<RuleOutcome>(n);
    for (let i = 0; i < n; i++) {
      rules[i] = {
        allowed: reply[1 + 3 * i] === 1,
        remaining: Number(reply[2 + 3 * i]),
        resetMs: Number(reply[3 + 3 * i]),
      };
    }
    return { allowed: reply[0] === 1, rules };
  }

  return {
    kind: 'redis',
    hit,
    ready: () => !closed && client.status === 'ready',
    close(): Promise<void> {
      // The client was injected: its owner quits it. Only stop taking decisions here.
      closed = true;
      return Promise.resolve();
    },
  };
}
