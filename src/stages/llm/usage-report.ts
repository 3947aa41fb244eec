/**
 * Per-identity LLM usage so far (`GET /v1/llm/usage` on the admin listener, and
 * `gatehouse usage`): for every LLM site, the tokens charged in each budget window and
 * reserved by calls still running, read from the token-budget store (docs/llm.md#usage-so-far).
 */
import type { AdminRoute } from '../../admin/server.js';
import { AdminError } from '../../admin/server.js';
import type { Config } from '../../config/schema.js';
import type { IdentityServices } from '../../identity/services.js';
import type { TokenBudget, TokenBudgetStore } from '../../stores/token-budget/types.js';
import { SUBJECT } from '../../stores/identities/types.js';
import { budgetKey, compileGrant, type BudgetDef } from './index.js';

export interface BudgetUsage {
  readonly id: string;
  readonly window_s: number;
  /** null: tracked only (the grant sets no such budget). */
  readonly limit: number | null;
  readonly used: number;
  readonly reserved: number;
  readonly remaining: number | null;
  readonly reset_s: number;
}

export interface SiteUsage {
  readonly subject: string;
  readonly site: string;
  /** The grant the identity gets on that site (from its registry record), or null when it is unknown. */
  readonly grant: string | null;
  readonly budgets: BudgetUsage[];
}

const TRACKED: BudgetDef[] = [
  { rule: 'tokens_per_minute', part: 'minute', windowMs: 60_000, limit: 0 },
  { rule: 'tokens_per_day', part: 'day', windowMs: 86_400_000, limit: 0 },
];

export async function usageReport(config: Config, store: TokenBudgetStore, identity: IdentityServices | null, subjects: readonly string[], siteFilter: string | null, nowMs: number): Promise<SiteUsage[]> {
  const out: SiteUsage[] = [];
  for (const site of config.sites) {
    if (site.llm === undefined || (siteFilter !== null && site.id !== siteFilter)) continue;
    const grants = site.llm.grants.map(compileGrant);
    for (const subject of subjects) {
      const rec = identity?.view.get(subject);
      const grant = rec === undefined ? undefined : grants.find((g) => g.matches(subject, rec.type, rec.role, rec.domain));
      const defs = grant?.budgets ?? TRACKED;
      const keys: TokenBudget[] = defs.map((b) => ({ key: budgetKey(site.id, b.part, subject), limit: b.limit, windowMs: b.windowMs }));
      const states = await store.peek(keys, nowMs);
      out.push({
        subject,
        site: site.id,
        grant: grant?.id ?? null,
        budgets: defs.map((b, i) => {
          const st = states[i] as { used: number; reserved: number; remaining: number; resetMs: number };
          return { id: b.rule, window_s: Math.ceil(b.windowMs / 1000), limit: b.limit === 0 ? null : b.limit, used: st.used, reserved: st.reserved, remaining: b.limit === 0 ? null : st.remaining, reset_s: Math.ceil(st.resetMs / 1000) };
        }),
      });
    }
  }
  return out;
}

/** GET /v1/llm/usage[?subject=S][&site=ID] — without a subject, every registered identity. */
export function llmAdminRoutes(config: () => Config, store: () => TokenBudgetStore, identity: IdentityServices | null, now: () => number): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/llm/usage',
      auth: true,
      async handle(r) {
        const subject = r.url.searchParams.get('subject');
        const site = r.url.searchParams.get('site');
        if (subject !== null && !SUBJECT.test(subject)) throw new AdminError('bad_request');
        let subjects: string[];
        if (subject !== null) subjects = [subject];
        else {
          if (identity === null) throw new AdminError('bad_request', 'give a subject: there is no identity registry to list');
          subjects = (await identity.stores.identities.list().catch(() => {
            throw new AdminError('identity_registry_unavailable');
          })).map((i) => i.subject);
        }
        let report: SiteUsage[];
        try {
          report = await usageReport(config(), store(), identity, subjects, site, now());
        } catch (err) {
          if (err instanceof AdminError) throw err;
          throw new AdminError('rate_limit_unavailable');
        }
        r.send(200, { usage: report });
      },
    },
  ];
}
