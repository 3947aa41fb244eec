/**
 * Distributed token-budget store on Redis: one hash per budget key, fields `b<k>` (tokens
 * charged in bucket k) and `r<id>` (`<tokens>:<expiry ms>`, a running call's reservation).
 * Every operation is ONE Lua script over all the budgets of a call, so it is atomic on the
 * server: two gateway instances can never both see room and both reserve past a limit
 * (docs/llm.md#token-budgets). EVALSHA with an EVAL fallback on NOSCRIPT, like the
 * rate-limit store.
 *
 * Time: the Redis server clock by default (every instance shares it), or the caller's
 * (`timeSource: 'caller'`, deterministic tests). Semantics are identical to memory.ts;
 * contract.test.ts runs against both.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { BudgetState, TokenBudget, TokenBudgetStore } from './types.js';

export interface RedisTokenBudgetStoreOptions {
  /** Injected client; its owner quits it. */
  readonly client: Redis;
  /** Prepended to every key (default 'gatehouse:'). */
  readonly prefix?: string;
  readonly timeSource?: 'redis' | 'caller';
  /** Told whether each command reached Redis (dependency state: a timeout on an open connection is an outage too). */
  readonly health?: { up(): void; down(err?: unknown): void };
}

/*
 * ARGV[1] op: 'reserve' | 'settle' | 'peek'
 * ARGV[2] 'redis' | 'caller';  ARGV[3] caller now (ms)
 * ARGV[4] reservation id;  ARGV[5] tokens;  ARGV[6] reservation ttl (ms);  ARGV[7] key TTL slack (ms)
 * ARGV[6 + 2i], ARGV[7 + 2i]: limit, window (ms) of KEYS[i]
 * Returns { allowed, used_1, reserved_1, remaining_1, reset_1, used_2, ... } (reserve and
 * peek; settle returns {1}).
 */
const SCRIPT = `
local op = ARGV[1]
local now
if ARGV[2] == 'redis' then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[3])
end
local id = 'r' .. ARGV[4]
local tokens = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local slack = tonumber(ARGV[7])
local n = #KEYS

local function scan(key, w)
  local g = math.max(1, math.floor(w / 60))
  local h = redis.call('HGETALL', key)
  local used, reserved = 0, 0
  local buckets = {}
  local exps = {}
  for j = 1, #h, 2 do
    local f = h[j]
    local v = h[j + 1]
    local c = string.sub(f, 1, 1)
    if c == 'b' then
      local k = tonumber(string.sub(f, 2))
      if (k + 1) * g + w <= now then
        redis.call('HDEL', key, f)
      else
        used = used + tonumber(v)
        buckets[#buckets + 1] = { k, tonumber(v) }
      end
    elseif c == 'r' then
      local sep = string.find(v, ':', 1, true)
      local t = tonumber(string.sub(v, 1, sep - 1))
      local exp = tonumber(string.sub(v, sep + 1))
      if exp <= now then
        redis.call('HDEL', key, f)
      else
        reserved = reserved + t
        exps[#exps + 1] = exp
      end
    end
  end
  return used, reserved, buckets, exps, g
end

local function state(out, used, reserved, buckets, exps, g, limit, w)
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  local reset = 0
  if limit == 0 or used + reserved < limit then
    if #buckets > 0 then reset = (buckets[1][1] + 1) * g + w - now end
  else
    local total = used + reserved
    local found = false
    for j = 1, #buckets do
      total = total - buckets[j][2]
      if total < limit then
        reset = (buckets[j][1] + 1) * g + w - now
        found = true
        break
      end
    end
    if not found and #exps > 0 then
      local m = exps[1]
      for j = 2, #exps do if exps[j] < m then m = exps[j] end end
      reset = m - now
    end
  end
  if reset < 0 then reset = 0 end
  local remaining = 0
  if limit > 0 then
    remaining = limit - used - reserved
    if remaining < 0 then remaining = 0 end
  end
  out[#out + 1] = used
  out[#out + 1] = reserved
  out[#out + 1] = remaining
  out[#out + 1] = reset
end

if op == 'settle' then
  for i = 1, n do
    local key = KEYS[i]
    local w = tonumber(ARGV[7 + 2 * i])
    local used, reserved, buckets, exps, g = scan(key, w)
    redis.call('HDEL', key, id)
    if tokens > 0 then
      redis.call('HINCRBY', key, string.format('b%d', math.floor(now / g)), tokens)
    end
    if redis.call('HLEN', key) > 0 then redis.call('PEXPIRE', key, w + g + ttl + slack) end
  end
  return { 1 }
end

local scans = {}
local allowed = 1
for i = 1, n do
  local limit = tonumber(ARGV[6 + 2 * i])
  local w = tonumber(ARGV[7 + 2 * i])
  local used, reserved, buckets, exps, g = scan(KEYS[i], w)
  scans[i] = { used, reserved, buckets, exps, g }
  if limit > 0 and used + reserved >= limit then allowed = 0 end
end
local out = { allowed }
if op == 'peek' then out[1] = 1 end
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[6 + 2 * i])
  local w = tonumber(ARGV[7 + 2 * i])
  local s = scans[i]
  if op == 'reserve' and allowed == 1 then
    redis.call('HSET', key, id, string.format('%d:%d', tokens, now + ttl))
    s[2] = s[2] + tokens
    s[4][#s[4] + 1] = now + ttl
    redis.call('PEXPIRE', key, w + s[5] + ttl + slack)
  end
  state(out, s[1], s[2], s[3], s[4], s[5], limit, w)
end
return out
`;

const SHA = createHash('sha1').update(SCRIPT).digest('hex');
/** Caller time is not Redis time: keep keys a minute longer so a skewed clock never loses one early. */
const CALLER_SLACK_MS = 60_000;
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

export function createRedisTokenBudgetStore(opts: RedisTokenBudgetStoreOptions): TokenBudgetStore {
  const { client } = opts;
  const prefix = opts.prefix ?? 'gatehouse:';
  const timeSource = opts.timeSource ?? 'redis';
  const slack = timeSource === 'caller' ? CALLER_SLACK_MS : 0;
  let closed = false;

  async function run(op: 'reserve' | 'settle' | 'peek', budgets: readonly TokenBudget[], id: string, tokens: number, ttlMs: number, nowMs: number): Promise<unknown[]> {
    if (closed) throw new Error('token-budget store is closed');
    if (client.status !== 'ready') throw new Error(`redis token-budget store not ready (connection ${client.status})`);
    if (!ID.test(id)) throw new RangeError('reservation ids are 1-128 characters of [A-Za-z0-9_.:-]');
    if (!Number.isSafeInteger(tokens) || tokens < 0) throw new RangeError('tokens must be a safe integer >= 0');
    const n = budgets.length;
    const args: (string | number)[] = new Array<string | number>(n + 7 + 2 * n);
    for (let i = 0; i < n; i++) {
      const b = budgets[i] as TokenBudget;
      if (!Number.isSafeInteger(b.limit) || b.limit < 0 || !Number.isSafeInteger(b.windowMs) || b.windowMs < 1) throw new RangeError('invalid token budget');
      for (let j = 0; j < i; j++) if ((budgets[j] as TokenBudget).key === b.key) throw new RangeError('duplicate budget key in one decision');
      args[i] = prefix + b.key;
      args[n + 7 + 2 * i] = b.limit;
      args[n + 8 + 2 * i] = b.windowMs;
    }
    args[n] = op;
    args[n + 1] = timeSource;
    args[n + 2] = timeSource === 'caller' ? nowMs : 0;
    args[n + 3] = id;
    args[n + 4] = tokens;
    args[n + 5] = ttlMs;
    args[n + 6] = slack;
    let reply: unknown;
    try {
      try {
        reply = await client.evalsha(SHA, n, ...args);
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
        reply = await client.eval(SCRIPT, n, ...args);
      }
    } catch (err) {
      opts.health?.down(err);
      throw err;
    }
    opts.health?.up();
    if (!Array.isArray(reply)) throw new Error('unexpected reply from token-budget script');
    return reply as unknown[];
  }

  function states(reply: unknown[], n: number): BudgetState[] {
    if (reply.length !== 1 + 4 * n) throw new Error('unexpected reply from token-budget script');
    const out: BudgetState[] = [];
    for (let i = 0; i < n; i++) out.push({ used: Number(reply[1 + 4 * i]), reserved: Number(reply[2 + 4 * i]), remaining: Number(reply[3 + 4 * i]), resetMs: Number(reply[4 + 4 * i]) });
    return out;
  }

  return {
    kind: 'redis',
    async reserve(budgets, id, tokens, ttlMs, nowMs) {
      const reply = await run('reserve', budgets, id, tokens, ttlMs, nowMs);
      return { allowed: reply[0] === 1, budgets: states(reply, budgets.length) };
    },
    async settle(budgets, id, tokens, ttlMs, nowMs) {
      await run('settle', budgets, id, tokens, ttlMs, nowMs);
    },
    async peek(budgets, nowMs) {
      return states(await run('peek', budgets, 'peek', 0, 0, nowMs), budgets.length);
    },
    ready: () => !closed && client.status === 'ready',
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}
