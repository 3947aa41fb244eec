export type { RateDecision, RateHit, RateLimitStore, RuleOutcome } from './types.js';
export { rateKey } from './key.js';
export { createMemoryRateLimitStore } from './memory.js';
export type { MemoryRateLimitStore, MemoryRateLimitStoreOptions } from './memory.js';
export { createRedisRateLimitStore } from './redis.js';
export type { RedisRateLimitStoreOptions } from './redis.js';
export { createRedisClient } from './redis-client.js';
export type { RedisClientOptions } from './redis-client.js';
