/**
 * The LLM stage (`llm`): the agent → LLM route (docs/llm.md). Runs after `policy` and
 * before `proxy`, on sites with an `llm` block. Cheapest checks first:
 *
 *   endpoint (404/405) → grant for the identity (403 model_not_allowed) → upstream
 *   credential (403 no_upstream_credential) → body: media type (415), size (413), one
 *   reading of a JSON object (400 invalid_body) → model, n, tools, max tokens (403 / 400)
 *   → token budgets: admit while there is room and reserve an estimate (429 rate_limited,
 *   503 rate_limit_unavailable when the store cannot decide).
 *
 * An admitted call gets a hook (pipeline/upstream-hook.ts) that the proxy calls: it puts
 * the chosen credential on the upstream request (the caller's Authorization / x-api-key
 * never pass), sends the body as decided (rewritten only when it must be), reads usage
 * out of the answer as it streams, and when the exchange is over — ended, failed or
 * abandoned by the client — charges the real usage (or the documented estimate) to the
 * budgets and records it on the exchange for the log line, the metrics and the audit
 * record.
 */
import type { IdentitiesConfig, LlmGrantConfig, SiteLlmConfig } from '../../config/schema.js';
import { isJsonContentType, parseJsonObject } from '../../http/json-body.js';
import type { CredentialKeyring } from '../../identity/credential-crypto.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage, StageResult } from '../../pipeline/stage.js';
import type { UpstreamHook } from '../../pipeline/upstream-hook.js';
import type { IdentityView } from '../../stores/identities/view.js';
import { rateKey } from '../../stores/rate-limit/key.js';
import type { ReserveDecision, TokenBudget, TokenBudgetStore } from '../../stores/token-budget/types.js';
import { BodyReadError, hasRequestBody, readBoundedBody } from '../policy/body.js';
import type { LlmCall } from './call.js';
import { compileCredentials, type Chosen, type CredentialSource } from './credentials.js';
import { DECIDED_FIELDS, endpointFor, type Endpoint } from './endpoints.js';
import { checkRequest, reservationFor, type GrantLimits, type ModelEntry } from './request.js';
import { bodyKind, UsageReader } from './usage.js';

export const LLM = 'llm';
const JSON_TYPES: ReadonlySet<string> = new Set(['application/json']);
/** Output tokens reserved per choice when nothing caps a call. */
export const DEFAULT_OUTPUT_RESERVATION = 4096;
const MINUTE = 60_000;
const DAY = 86_400_000;

export interface BudgetDef {
  /** Rule id: the RateLimit header name, the log's `rule`, the metric label. */
  readonly rule: string;
  /** Store key part. */
  readonly part: string;
  readonly windowMs: number;
  /** 0: tracked only (usage reporting), never refuses. */
  readonly limit: number;
}

export interface CompiledGrant extends GrantLimits {
  readonly id: string;
  matches(subject: string, type: string, role: string | null, domain: string | null): boolean;
  readonly budgets: readonly BudgetDef[];
  /** RateLimit-Policy value of the enforced budgets ('' when none). */
  readonly policy: string;
}

export function compileGrant(g: LlmGrantConfig): CompiledGrant {
  const m = g.match;
  const subjects = m.subjects ? new Set(m.subjects) : null;
  const types = m.types ? new Set<string>(m.types) : null;
  const roles = m.roles ? new Set(m.roles) : null;
  const domains = m.domains ? new Set(m.domains) : null;
  const all = g.models.includes('*');
  const models = new Set(g.models);
  const budgets: BudgetDef[] = [
    { rule: 'tokens_per_minute', part: 'minute', windowMs: MINUTE, limit: g.tokens_per_minute ?? 0 },
    { rule: 'tokens_per_day', part: 'day', windowMs: DAY, limit: g.tokens_per_day ?? 0 },
  ];
  if (g.budget) budgets.push({ rule: 'token_budget', part: `w${g.budget.window}`, windowMs: g.budget.window, limit: g.budget.tokens });
  return {
    id: g.id,
    matches: (subject, type, role, domain) =>
      (subjects === null || subjects.has(subject)) && (types === null || types.has(type)) && (roles === null || (role !== null && roles.has(role))) && (domains === null || (domain !== null && domains.has(domain))),
    allowsModel: (name) => all || models.has(name),
    maxOutputTokens: g.max_output_tokens ?? null,
    maxN: g.max_n,
    tools: g.tools,
    budgets,
    policy: budgets
      .filter((b) => b.limit > 0)
      .map((b) => `"${b.rule}";q=${b.limit};w=${Math.ceil(b.windowMs / 1000)}`)
      .join(', '),
  };
}

/** The store keys of an identity's budgets on a site (also read by `gatehouse usage`). */
export function budgetKey(siteId: string, part: string, subject: string): string {
  return rateKey(`~llm:${siteId}`, part, subject);
}

export interface LlmStageOptions {
  readonly siteId: string;
  readonly cfg: SiteLlmConfig;
  /** Directory of the config file (credential files). */
  readonly dir: string;
  readonly identities: IdentitiesConfig;
  /** Decrypts registry credentials; null when identities.credential_keys is empty. */
  readonly credentialKeys: CredentialKeyring | null;
  /** The registry view (role, domain, encrypted credential); null without identity services. */
  readonly registry: IdentityView | null;
  readonly budgets: TokenBudgetStore;
  readonly bodyIdleTimeoutMs: number;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now?: () => number;
}

export function createLlmStage(opts: LlmStageOptions): Stage {
  const { siteId, cfg, metrics, log, budgets: store } = opts;
  const now = opts.now ?? Date.now;
  const models = new Map<string, ModelEntry>();
  for (const [name, m] of Object.entries(cfg.models)) models.set(name, { name, upstream: m.upstream ?? name, maxOutputTokens: m.max_output_tokens ?? null });
  const grants = cfg.grants.map(compileGrant);
  const credentials: CredentialSource = compileCredentials(cfg.credentials, opts.dir, opts.credentialKeys);
  const header = cfg.credentials.header ?? (cfg.provider === 'anthropic' ? 'x-api-key' : 'authorization');
  const ttl = cfg.reservation_timeout;
  const m = metrics;
  const refusals = new Map<string, { inc(): void }>();
  const refused = (code: string, rule: string, headers?: string[], cause?: unknown): Refusal => {
    let c = refusals.get(code);
    if (c === undefined) {
      const child = m.llmRefusals.labels(siteId, code);
      refusals.set(code, child);
      c = child;
    }
    c.inc();
    return new Refusal(code as Refusal['code'], LLM, rule, headers, cause);
  };
  let seq = 0;
  const instance = Math.random().toString(36).slice(2, 10);

  function settle(keys: readonly TokenBudget[], rid: string, tokens: number, attempt: number): void {
    let r: void | Promise<void>;
    try {
      r = store.settle(keys, rid, tokens, ttl, now());
    } catch (err) {
      return retry(keys, rid, tokens, attempt, err);
    }
    if (r instanceof Promise) r.catch((err: unknown) => retry(keys, rid, tokens, attempt, err));
  }
  function retry(keys: readonly TokenBudget[], rid: string, tokens: number, attempt: number, err: unknown): void {
    // Usage is not dropped on a store hiccup: retried with backoff for about a minute.
    if (attempt >= 6) {
      m.llmSettleFailures.labels(siteId).inc();
      log.error({ event: 'llm_usage_not_charged', site: siteId, tokens, err: String(err) }, 'LLM usage could not be charged to the token budgets');
      return;
    }
    setTimeout(() => settle(keys, rid, tokens, attempt + 1), 1000 * 2 ** attempt).unref();
  }

  function admitted(ex: Exchange, grant: CompiledGrant, keys: TokenBudget[], d: ReserveDecision, hook: LlmHook): StageResult {
    // RateLimit headers for the enforced budgets (docs/llm.md#token-budgets).
    let tightest = -1;
    let retry = 0;
    let by: string | undefined;
    for (let i = 0; i < keys.length; i++) {
      const b = grant.budgets[i] as BudgetDef;
      const s = d.budgets[i];
      if (b.limit === 0 || s === undefined) continue;
      if (s.used + s.reserved >= b.limit) {
        by ??= b.rule;
        retry = Math.max(retry, Math.ceil(s.resetMs / 1000));
      }
      if (tightest < 0 || s.remaining < (d.budgets[tightest] as { remaining: number }).remaining) tightest = i;
    }
    if (grant.policy !== '') ex.extraHeaders.push('RateLimit-Policy', grant.policy);
    if (tightest >= 0) {
      const s = d.budgets[tightest] as { remaining: number; resetMs: number };
      ex.extraHeaders.push('RateLimit', `"${(grant.budgets[tightest] as BudgetDef).rule}";r=${d.allowed ? s.remaining : 0};t=${d.allowed ? Math.ceil(s.resetMs / 1000) : Math.max(1, retry)}`);
    }
    if (!d.allowed) {
      m.rateLimitRefusals.labels(siteId, by ?? 'tokens', 'enforce').inc();
      return refused('rate_limited', by ?? 'tokens', ['Retry-After', String(Math.max(1, retry))]);
    }
    hook.reserved = keys;
    ex.hook = hook;
    return undefined;
  }

  function decideBody(ex: Exchange, ep: Endpoint, grant: CompiledGrant, chosen: Chosen, buf: Buffer): StageResult | Promise<StageResult> {
    const parsed = parseJsonObject(buf, DECIDED_FIELDS);
    if (!parsed.ok) return refused('invalid_body', parsed.error === 'duplicate_member' ? 'duplicate_member' : 'json');
    const v = checkRequest(ep, parsed.value, buf, { models, grant, overMaxTokens: cfg.over_max_tokens });
    if (!v.ok) return refused(v.code, v.rule);
    ex.body = v.body;
    const hook = new LlmHook(ex, ep, header, chosen, v.model, v.stream, v.stripUsage, v.rewritten, buf.length, finishCall);
    const subject = (ex.identity as { subject: string }).subject;
    const keys: TokenBudget[] = grant.budgets.map((b) => ({ key: budgetKey(siteId, b.part, subject), limit: b.limit, windowMs: b.windowMs }));
    const rid = `${instance}.${++seq}`;
    hook.rid = rid;
    const tokens = reservationFor(buf.length, v.maxOutput, v.n, ep.dialect === 'embeddings' ? 0 : DEFAULT_OUTPUT_RESERVATION);
    let d: ReserveDecision | Promise<ReserveDecision>;
    try {
      d = store.reserve(keys, rid, tokens, ttl, now());
    } catch (err) {
      return storeFailed(err);
    }
    if (d instanceof Promise) return d.then((r) => admitted(ex, grant, keys, r, hook), storeFailed);
    return admitted(ex, grant, keys, d, hook);
  }

  function storeFailed(err: unknown): StageResult {
    m.rateLimitStoreErrors.labels(siteId, 'refused').inc();
    return new Refusal('rate_limit_unavailable', LLM, 'tokens', undefined, err);
  }

  /** Called once per admitted exchange when it is over: charge and record. */
  function finishCall(hook: LlmHook, ex: Exchange): void {
    const call = hook.call(ex);
    ex.llm = call;
    if (hook.reserved !== null) settle(hook.reserved, hook.rid, call.total_tokens ?? 0, 0);
    const model = call.model ?? '-';
    m.llmCalls.labels(siteId, model, call.usage).inc();
    if (call.prompt_tokens !== null) m.llmTokens.labels(siteId, model, 'prompt').inc(call.prompt_tokens);
    if (call.completion_tokens !== null) m.llmTokens.labels(siteId, model, 'completion').inc(call.completion_tokens);
    if (call.usage === 'estimated') m.llmUsageUnknown.labels(siteId, model, hook.estimateReason).inc();
    if (call.ttfb_us !== null) m.llmTimeToFirstByte.labels(siteId, model).observe(call.ttfb_us / 1e6);
  }

  return {
    id: LLM,
    run: function llm(ex: Exchange): StageResult | Promise<StageResult> {
      const id = ex.identity;
      if (id === null) return refused('no_upstream_credential', 'anonymous');
      const ep = endpointFor(cfg.provider, ex.normPath);
      if (ep === null) return refused('not_found', 'endpoint');
      if (ex.req.method !== ep.method) return refused('method_not_allowed', 'method', ['Allow', ep.method]);
      const rec = opts.registry?.get(id.subject);
      const role = rec?.role ?? id.role;
      const domain = rec?.domain ?? id.domain;
      let grant: CompiledGrant | undefined;
      for (const g of grants) {
        if (g.matches(id.subject, id.type, role, domain)) {
          grant = g;
          break;
        }
      }
      if (grant === undefined) return refused('model_not_allowed', 'grant');
      ex.note('llm_grant', grant.id);
      let chosen: Chosen | null;
      try {
        chosen = credentials.choose(id.subject, domain, role, opts.registry?.credential(id.subject));
      } catch (err) {
        // A registry credential that does not decrypt: no credential (the cause names no secret).
        log.warn({ event: 'llm_credential_unusable', site: siteId, subject: id.subject, err: (err as Error).message }, 'stored LLM credential cannot be decrypted');
        return refused('no_upstream_credential', 'registry', undefined, err);
      }
      if (chosen === null) return refused('no_upstream_credential', 'none');
      if (ep.method === 'GET') {
        ex.hook = new LlmHook(ex, ep, header, chosen, null, false, false, false, 0, finishCall);
        return undefined;
      }
      const req = ex.req;
      const g = grant;
      const c = chosen;
      if (ex.body === null && !hasRequestBody(ex)) return refused('invalid_body', 'json');
      if (!isJsonContentType(req.headers['content-type'], JSON_TYPES) || req.headers['content-encoding'] !== undefined) return refused('unsupported_media_type', 'content_type');
      if (ex.body !== null) return decideBody(ex, ep, g, c, ex.body);
      if (ex.res === null) return refused('invalid_body', 'json');
      return readBoundedBody(ex, cfg.max_body_bytes, opts.bodyIdleTimeoutMs).then(
        (buf) => {
          ex.bytesIn = buf.length;
          return decideBody(ex, ep, g, c, buf);
        },
        (err: unknown) => {
          if (err instanceof BodyReadError) return refused(err.code, 'body');
          throw err;
        },
      );
    },
  };
}

/** Headers the upstream never gets from the caller on an LLM site (the credential is the gateway's to set). */
const STRIP = new Set(['authorization', 'x-api-key', 'api-key', 'content-length', 'accept-encoding', 'openai-organization', 'openai-project']);

export class LlmHook implements UpstreamHook {
  reserved: TokenBudget[] | null = null;
  rid = '';
  estimateReason: 'unexpected_shape' | 'interrupted' = 'interrupted';
  private status = 0;
  private ended = false;
  private firstByte = -1;
  private reader: UsageReader | null = null;
  private done = false;

  constructor(
    private readonly ex: Exchange,
    private readonly ep: Endpoint,
    private readonly header: 'authorization' | 'x-api-key' | 'api-key',
    private readonly chosen: Chosen,
    private readonly model: ModelEntry | null,
    private readonly stream: boolean,
    private readonly strip: boolean,
    private readonly rewritten: boolean,
    private readonly requestBytes: number,
    private readonly onFinish: (hook: LlmHook, ex: Exchange) => void,
  ) {}

  requestHeaders(list: string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i] as string;
      if (STRIP.has(name.toLowerCase())) continue;
      out.push(name, list[i + 1] as string);
    }
    out.push(this.header, this.header === 'authorization' ? `Bearer ${this.chosen.value}` : this.chosen.value);
    // The answer is read for usage: ask for it uncompressed.
    out.push('accept-encoding', 'identity');
    const body = this.ex.body;
    if (body !== null) out.push('content-length', String(body.length));
    return out;
  }

  responseStart(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): void {
    this.status = status;
    if (this.model === null) return;
    const ct = headers['content-type'];
    this.reader = new UsageReader(this.ep.dialect, bodyKind(Array.isArray(ct) ? ct[0] : ct), this.strip && status < 300);
  }

  responseData(chunk: Buffer): Buffer | null {
    if (this.firstByte < 0) this.firstByte = performance.now();
    return this.reader === null ? chunk : this.reader.feed(chunk);
  }

  responseEnd(): void {
    this.ended = true;
    this.reader?.end();
  }

  finish(ex: Exchange): void {
    if (this.done) return;
    this.done = true;
    this.onFinish(this, ex);
  }

  /** What the call used: reported, or estimated (docs/llm.md#usage), or nothing. */
  call(ex: Exchange): LlmCall {
    const r = this.reader;
    let prompt: number | null = null;
    let completion: number | null = null;
    let usage: LlmCall['usage'] = 'none';
    if (r !== null && r.usage !== null) {
      prompt = r.usage.prompt;
      completion = r.usage.completion;
      usage = 'reported';
    } else if (r !== null && this.status >= 200 && this.status < 400) {
      // An answer without usage (unexpected shape) or one cut short (client gone, upstream
      // failed mid-stream): charged by the documented estimate, never for free.
      this.estimateReason = this.ended ? 'unexpected_shape' : 'interrupted';
      prompt = r.promptSoFar ?? Math.ceil(this.requestBytes / 4);
      completion = r.completionSoFar ?? (r.kind === 'sse' && r.textChars > 0 ? Math.ceil(r.textChars / 4) : Math.ceil(r.bytes / 4));
      if (this.ep.dialect === 'embeddings') completion = 0;
      usage = 'estimated';
    } else if (this.model !== null) {
      // No answer, or an upstream error without usage: providers do not bill those.
      prompt = 0;
      completion = 0;
    }
    return {
      model: this.model?.name ?? null,
      upstream_model: this.model?.upstream ?? null,
      endpoint: this.ep.dialect,
      streamed: this.stream,
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt === null ? null : prompt + (completion ?? 0),
      usage,
      ttfb_us: this.firstByte < 0 ? null : Math.round((this.firstByte - ex.start) * 1000),
      credential: this.chosen.source,
      rewritten: this.rewritten,
    };
  }
}
