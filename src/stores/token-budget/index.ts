export type { BudgetState, ReserveDecision, TokenBudget, TokenBudgetStore } from './types.js';
export { bucketMs } from './types.js';
export { createMemoryTokenBudgetStore } from './memory.js';
export { createRedisTokenBudgetStore } from './redis.js';
