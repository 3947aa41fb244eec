/**
 * The audit record: a fixed set of fields, every one always present (null when unknown),
 * so the canonical form (canonical.ts) has one shape a third party can reproduce from
 * docs/audit.md alone. Values are strings, safe integers, string arrays or null — never floats — so
 * the canonical JSON is also the RFC 8785 (JCS) form of the record.
 */

/** What a record describes. */
export type RecordKind = 'exchange' | 'drop_aggregate' | 'restart';

/** The decision: proxied, refused with an answer, or connection closed with nothing written. */
export type Decision = 'allowed' | 'refused' | 'dropped';

/** The record body: what the gateway saw (no chain fields). */
export interface AuditBody {
  kind: RecordKind;
  /** RFC 3339 UTC with milliseconds (Date#toISOString); for aggregates, the last event. */
  time: string;
  /** Aggregates: the first event in the interval; restart records: null. */
  first_time: string | null;
  request_id: string | null;
  instance: string | null;
  site: string | null;
  route: string | null;
  client_ip: string | null;
  peer_ip: string | null;
  subject: string | null;
  identity_type: string | null;
  role: string | null;
  domain: string | null;
  agent: string | null;
  token_id_hash: string | null;
  method: string | null;
  path: string | null;
  status: number | null;
  decision: Decision | null;
  stage: string | null;
  rule: string | null;
  code: string | null;
  /** Reserved for the policy stage (issue 5): the ids of the policies that decided, in order. Always null today. */
  policies: string[] | null;
  latency_us: number | null;
  bytes_in: number | null;
  bytes_out: number | null;
  /** Aggregates: how many connections; restart records: first lost seq; else 1. */
  count: number;
  /** Restart records: the last seq that may have been lost; else null. */
  lost_to: number | null;
  /**
   * OPTIONAL: present only on records of LLM calls (docs/llm.md, docs/audit.md#the-llm-member);
   * absent elsewhere, so every other record's canonical form is unchanged.
   */
  llm?: AuditLlm;
}

/** The `llm` member: the call's model, usage and time to first byte. Never a credential. */
export interface AuditLlm {
  completion_tokens: number | null;
  /** Which source the upstream credential came from (subject, registry, domain, role). */
  credential: string | null;
  endpoint: string;
  model: string | null;
  prompt_tokens: number | null;
  rewritten: boolean;
  streamed: boolean;
  total_tokens: number | null;
  ttfb_us: number | null;
  upstream_model: string | null;
  /** reported, estimated or none. */
  usage: string;
}

/** The chain fields the writer adds. */
export interface ChainFields {
  v: 1 | 2;
  stream: string;
  seq: number;
  kid: string;
}

/** A v1 chained record as stored and exported: body + chain fields + prev_hash, mac, hash (hex). */
export interface ChainedRecord extends AuditBody, ChainFields {
  prev_hash: string;
  mac: string;
  hash: string;
}

/**
 * A v2 record as stored and exported (v2.ts): body + chain fields + its leaf hash; the last
 * record of a batch also carries the batch's seal and first seq.
 */
export interface SealedRecord extends AuditBody, ChainFields {
  leaf: string;
  seal?: string;
  seal_first?: number;
}

/** The canonical field list, in canonical (code-point) order. */
export const CANONICAL_FIELDS = [
  'agent',
  'bytes_in',
  'bytes_out',
  'client_ip',
  'code',
  'count',
  'decision',
  'domain',
  'first_time',
  'identity_type',
  'instance',
  'kid',
  'kind',
  'latency_us',
  'lost_to',
  'method',
  'path',
  'peer_ip',
  'policies',
  'request_id',
  'role',
  'route',
  'rule',
  'seq',
  'site',
  'stage',
  'status',
  'stream',
  'subject',
  'time',
  'token_id_hash',
  'v',
] as const satisfies ReadonlyArray<keyof (AuditBody & ChainFields)>;

export function emptyBody(kind: RecordKind, time: string): AuditBody {
  // The chain members are declared up front (the writer fills them in), so every record
  // object has one hidden class from birth instead of growing four properties later.
  const r: AuditBody & ChainFields = {
    v: 2,
    stream: '',
    seq: 0,
    kid: '',
    kind,
    time,
    first_time: null,
    request_id: null,
    instance: null,
    site: null,
    route: null,
    client_ip: null,
    peer_ip: null,
    subject: null,
    identity_type: null,
    role: null,
    domain: null,
    agent: null,
    token_id_hash: null,
    method: null,
    path: null,
    status: null,
    decision: null,
    stage: null,
    rule: null,
    code: null,
    policies: null,
    latency_us: null,
    bytes_in: null,
    bytes_out: null,
    count: 1,
    lost_to: null,
  };
  return r;
}
