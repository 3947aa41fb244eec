/**
 * One policy decision: the request as Cedar sees it, a canonical key for the decision
 * cache, and the evaluation through the pre-parsed set. Building the Cedar call (JSON
 * entities, a WASM round trip) is the expensive part, so it only happens on a cache miss.
 *
 * The request model (docs/policy.md):
 *   principal  Agent::"<sub>" | Human::"<sub>" with role, domain, agent (when set), or
 *              Anonymous::"anonymous" on sites without auth
 *   action     Action::"<METHOD>" (GET, POST, ...)
 *   resource   Site::"<site id>" with site, path_prefix, upstream, zone and domain
 *   context    ip (ipaddr), path (normalized), method, hour (0-23 UTC), weekday (0-6, UTC,
 *              0 = Sunday), body (record of the configured body fields)
 */
import type * as Cedar from '@cedar-policy/cedar-wasm/nodejs';
import { cedar } from './cedar.js';
import type { Identity } from '../../pipeline/identity.js';
import type { ContextUse, LoadedPolicySet } from './policy-set.js';

export interface Decision {
  readonly decision: 'allow' | 'deny' | 'error';
  /** Ids of the policies that decided (the permits for an allow, the forbids for a deny), or that errored. */
  readonly policies: readonly string[];
  /** Evaluation error messages (log only). */
  readonly errors: readonly string[] | null;
}

export interface ResourceFacts {
  readonly site: string;
  readonly pathPrefix: string;
  readonly upstream: string;
  readonly zone: string;
  readonly domain: string;
}

export interface DecisionInput {
  readonly identity: Identity | null;
  readonly method: string;
  readonly clientIp: string;
  readonly path: string;
  readonly hour: number;
  readonly weekday: number;
  /** Selected body fields; null when the site reads none. */
  readonly body: Readonly<Record<string, string | number | boolean>> | null;
}

const SEP = '\u001f';

/**
 * Every part of the input that can change the decision, in a fixed order: the principal
 * and the action always, the context fields only when the set's policies read them.
 */
export function decisionKey(i: DecisionInput, uses: ContextUse): string {
  const id = i.identity;
  let k = id === null ? 'anon' : `${id.type}${SEP}${id.subject}${SEP}${id.role ?? ''}${SEP}${id.domain ?? ''}${SEP}${id.agent ?? ''}`;
  k += SEP + i.method;
  k += uses.ip ? SEP + i.clientIp : SEP;
  k += uses.path ? SEP + i.path : SEP;
  k += uses.hour ? `${SEP}${i.hour}` : SEP;
  k += uses.weekday ? `${SEP}${i.weekday}` : SEP;
  if (uses.body && i.body !== null) k += SEP + JSON.stringify(i.body);
  return k;
}

function principalOf(id: Identity | null): { uid: { type: string; id: string }; attrs: Record<string, Cedar.CedarValueJson> } {
  if (id === null) return { uid: { type: 'Anonymous', id: 'anonymous' }, attrs: {} };
  const attrs: Record<string, Cedar.CedarValueJson> = { subject: id.subject, type: id.type };
  if (id.role !== null) attrs.role = id.role;
  if (id.domain !== null) attrs.domain = id.domain;
  if (id.agent !== null) attrs.agent = id.agent;
  return { uid: { type: id.type === 'agent' ? 'Agent' : 'Human', id: id.subject }, attrs };
}

export function evaluate(set: LoadedPolicySet, res: ResourceFacts, i: DecisionInput): Decision {
  const p = principalOf(i.identity);
  const resource = { type: 'Site', id: res.site };
  // Only what the policies read (policy-set.ts contextUse), so the cache key covers it all.
  const u = set.uses;
  const context: Record<string, Cedar.CedarValueJson> = {};
  if (u.ip) context.ip = { __extn: { fn: 'ip', arg: i.clientIp } };
  if (u.path) context.path = i.path;
  if (u.method) context.method = i.method;
  if (u.hour) context.hour = i.hour;
  if (u.weekday) context.weekday = i.weekday;
  if (u.body && i.body !== null) context.body = i.body;
  let answer: Cedar.AuthorizationAnswer;
  try {
    answer = cedar().statefulIsAuthorized({
      principal: p.uid,
      action: { type: 'Action', id: i.method },
      resource,
      context,
      preparsedPolicySetId: set.pid,
      entities: [
        { uid: p.uid, attrs: p.attrs, parents: [] },
        { uid: resource, attrs: { site: res.site, path_prefix: res.pathPrefix, upstream: res.upstream, zone: res.zone, domain: res.domain }, parents: [] },
      ],
    });
  } catch (err) {
    return { decision: 'error', policies: [], errors: [String(err)] };
  }
  if (answer.type === 'failure') return { decision: 'error', policies: [], errors: answer.errors.map((e) => e.message) };
  const d = answer.response.diagnostics;
  // Cedar skips a policy whose condition errors. An erroring forbid could have refused,
  // so any evaluation error refuses the request (fail closed).
  if (d.errors.length > 0) {
    return { decision: 'error', policies: d.errors.map((e) => e.policyId), errors: d.errors.map((e) => `${e.policyId}: ${e.error.message}`) };
  }
  return { decision: answer.response.decision === 'allow' ? 'allow' : 'deny', policies: d.reason, errors: null };
}

/** A bounded LRU of decisions; one per loaded policy set, so a reload starts empty. */
export class DecisionCache {
  private readonly map = new Map<string, Decision>();
  constructor(private readonly max: number) {}

  get(key: string): Decision | undefined {
    const d = this.map.get(key);
    if (d !== undefined) {
      // Most recently used goes to the end (Map keeps insertion order).
      this.map.delete(key);
      this.map.set(key, d);
    }
    return d;
  }

  set(key: string, d: Decision): void {
    if (this.max === 0) return;
    if (this.map.size >= this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    this.map.set(key, d);
  }

  get size(): number {
    return this.map.size;
  }
}
