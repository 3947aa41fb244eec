/**
 * Property tests: both stores against a reference model that applies the definition in
 * types.ts literally (an array of every accepted timestamp per key, never pruned), plus
 * the sliding-log invariant checked directly on the hits the store accepted.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { needRedis } from '../../testing/services.js';
import { createMemoryRateLimitStore } from './memory.js';
import type { MemoryRateLimitStore } from './memory.js';
import { createRedisRateLimitStore } from './redis.js';
import { closeSharedRedis, deleteByPrefix, sharedRedis, uniquePrefix } from './test-support.js';
import type { RateDecision, RateHit, RateLimitStore, RuleOutcome } from './types.js';

/** The definition, literally. */
class Model {
  private readonly accepted = new Map<string, number[]>();

  hit(hits: readonly RateHit[], now: number): RateDecision {
    const inWindow = hits.map((h) => (this.accepted.get(h.key) ?? []).filter((ts) => ts > now - h.windowMs && ts <= now));
    const room = hits.map((h, i) => inWindow[i]!.length < h.limit);
    const allowed = hits.every((h, i) => !h.enforce || room[i]);
    const rules: RuleOutcome[] = hits.map((h, i) => {
      const win = inWindow[i]!;
      if (allowed && room[i]) {
        const all = this.accepted.get(h.key) ?? [];
        all.push(now);
        this.accepted.set(h.key, all);
        win.push(now);
      }
      return {
        allowed: room[i]!,
        remaining: h.limit - win.length,
        resetMs: win.length === 0 ? 0 : Math.min(...win) + h.windowMs - now,
      };
    });
    return { allowed, rules };
  }
}

interface RuleDef {
  limit: number;
  windowMs: number;
  enforce: boolean;
}
interface Step {
  advance: number;
  rules: number[];
  sweep: boolean;
}
interface Scenario {
  start: number;
  rules: RuleDef[];
  steps: Step[];
}

const ruleArb: fc.Arbitrary<RuleDef> = fc.record({
  limit: fc.integer({ min: 1, max: 4 }),
  windowMs: fc.integer({ min: 1, max: 20 }),
  enforce: fc.boolean(),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.array(ruleArb, { minLength: 1, maxLength: 4 }).chain((rules) => {
  const maxW = Math.max(...rules.map((r) => r.windowMs));
  const indices = rules.map((_, i) => i);
  const step: fc.Arbitrary<Step> = fc.record({
    // 0 often (same-millisecond hits), otherwise 0..2W: crosses window edges exactly.
    advance: fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 0, max: 2 * maxW }), weight: 3 }),
    rules: fc.shuffledSubarray(indices, { minLength: 1, maxLength: Math.min(3, rules.length) }),
    sweep: fc.boolean(),
  });
  return fc.record({
    start: fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
    rules: fc.constant(rules),
    steps: fc.array(step, { minLength: 1, maxLength: 60 }),
  });
});

/** No half-open window of length W contains more than N of the accepted timestamps. */
function assertInvariant(accepted: Map<number, number[]>, rules: readonly RuleDef[]): void {
  for (const [i, ts] of accepted) {
    const { limit, windowMs } = rules[i]!;
    // The fullest window ends at an accepted timestamp; timestamps are non-decreasing.
    let lo = 0;
    for (let hi = 0; hi < ts.length; hi++) {
      while (ts[lo]! <= ts[hi]! - windowMs) lo++;
      assert.ok(hi - lo + 1 <= limit, `rule ${i}: ${hi - lo + 1} accepted hits in a window of ${windowMs} ms (limit ${limit})`);
    }
  }
}

async function runScenario(store: RateLimitStore, sc: Scenario): Promise<void> {
  const model = new Model();
  const accepted = new Map<number, number[]>();
  let now = sc.start;
  for (const [n, step] of sc.steps.entries()) {
    now += step.advance;
    if (step.sweep && store.kind === 'memory') (store as MemoryRateLimitStore).sweep(); // must never change a decision
    const hits = step.rules.map((i): RateHit => ({ key: `k${i}`, ...sc.rules[i]! }));
    const got = await store.hit(hits, now);
    const want = model.hit(hits, now);
    assert.deepEqual(got, want, `step ${n} at +${now - sc.start} ms, rules ${JSON.stringify(step.rules)}`);
    step.rules.forEach((ri, j) => {
      if (got.allowed && got.rules[j]!.allowed) {
        const list = accepted.get(ri) ?? [];
        list.push(now);
        accepted.set(ri, list);
      }
    });
  }
  assertInvariant(accepted, sc.rules);
}

describe('rate-limit stores agree with the reference model', () => {
  it('memory store (300 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const store = createMemoryRateLimitStore({ sweepIntervalMs: 0 });
        try {
          await runScenario(store, sc);
        } finally {
          await store.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('redis store, caller time (50 runs)', async (t) => {
    if (!(await needRedis(t))) return;
    const client = await sharedRedis();
    const base = uniquePrefix('model');
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(scenarioArb, async (sc) => {
          // A fresh prefix per run (and per shrink attempt): runs never see each other.
          const store = createRedisRateLimitStore({ client, prefix: `${base}${run++}:`, timeSource: 'caller' });
          try {
            await runScenario(store, sc);
          } finally {
            await store.close();
          }
        }),
        { numRuns: 50 },
      );
    } finally {
      await deleteByPrefix(client, base);
    }
  });

  it('the invariant check itself catches an over-full window', () => {
    assert.throws(() => assertInvariant(new Map([[0, [10, 11, 19]]]), [{ limit: 2, windowMs: 10, enforce: true }]));
    assertInvariant(new Map([[0, [10, 11, 20]]]), [{ limit: 2, windowMs: 10, enforce: true }]);
  });
});

after(() => closeSharedRedis());
