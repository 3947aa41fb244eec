/**
 * The stage interface. A stage looks at the exchange and either lets it continue
 * (returns undefined) or refuses it (returns a Refusal). It may be asynchronous (a store
 * round trip) but should stay synchronous when it can: the runner only pays for a
 * promise when a stage returns one. Stages never write responses.
 *
 * Stage ids (config key = metric label = log field = audit field), in the fixed order
 * the pipeline runs them (docs/lifecycle.md):
 *   ip_filter → request_limits → rate_limit → token → revocation → identity_rate_limit →
 *   policy → proxy → headers (applied to every response) → log/metrics
 */
import type { Exchange } from './exchange.js';
import type { Refusal } from './refusal.js';

export type StageResult = Refusal | undefined;

export interface Stage {
  readonly id: string;
  run(ex: Exchange): StageResult | Promise<StageResult>;
}
