/**
 * The LLM part of a site's stage list, compiled once per config generation: credential
 * files are read here (a reload re-reads them: that is how they rotate), and so is the
 * registry's credential keyring.
 */
import type { Config, SiteConfig } from '../../config/schema.js';
import { loadCredentialKeyring, type CredentialKeyring } from '../../identity/credential-crypto.js';
import type { IdentityServices } from '../../identity/services.js';
import type { GatewayContext } from '../../pipeline/context.js';
import type { Stage } from '../../pipeline/stage.js';
import type { TokenBudgetStore } from '../../stores/token-budget/types.js';
import { createLlmStage } from './index.js';

export interface LlmRuntimeDeps {
  readonly ctx: GatewayContext;
  readonly tokenBudgets?: TokenBudgetStore;
  readonly identity?: IdentityServices | null;
  readonly dir?: string;
  readonly now?: () => number;
}

const keyrings = new WeakMap<Config, CredentialKeyring | null>();

function keyringOf(config: Config, dir: string): CredentialKeyring | null {
  let k = keyrings.get(config);
  if (k === undefined) {
    k = config.identities.credential_keys.length > 0 ? loadCredentialKeyring(config.identities.credential_keys, dir) : null;
    keyrings.set(config, k);
  }
  return k;
}

export function llmStages(config: Config, site: SiteConfig, deps: LlmRuntimeDeps): Stage[] {
  const cfg = site.llm;
  if (!cfg) return [];
  if (!deps.tokenBudgets) throw new Error(`site ${site.id} has an llm block but no token-budget store is open`);
  const dir = deps.dir ?? process.cwd();
  return [
    createLlmStage({
      siteId: site.id,
      cfg,
      dir,
      identities: config.identities,
      credentialKeys: cfg.credentials.registry ? keyringOf(config, dir) : null,
      registry: deps.identity?.view ?? null,
      budgets: deps.tokenBudgets,
      bodyIdleTimeoutMs: config.http.body_idle_timeout,
      metrics: deps.ctx.metrics,
      log: deps.ctx.log,
      now: deps.now,
    }),
  ];
}
