/**
 * What the LLM stage decides on in a request body, and the rewrite it makes when it must
 * (docs/llm.md#requests). Pure functions over one reading of the body (src/http/json-body.ts):
 * the stage hands in the parsed object and the bytes, gets back either a refusal reason or
 * what to forward. The body is forwarded byte for byte unless something had to change
 * (an alias, a clamped or missing max-tokens field, usage asked for on a stream); then
 * it is re-serialized canonically (JSON.stringify of the one reading, members in their
 * order, changed values in place, added members last).
 */
import type { Endpoint } from './endpoints.js';
import { DECIDED_FIELDS } from './endpoints.js';

export interface ModelEntry {
  /** The public name clients use. */
  readonly name: string;
  /** The name the upstream gets. */
  readonly upstream: string;
  readonly maxOutputTokens: number | null;
}

export interface GrantLimits {
  readonly allowsModel: (name: string) => boolean;
  readonly maxOutputTokens: number | null;
  readonly maxN: number;
  readonly tools: boolean;
}

export type RequestVerdict =
  | {
      readonly ok: true;
      readonly model: ModelEntry;
      readonly stream: boolean;
      /** Usage was asked for by the gateway, not the client: its chunk is not passed on. */
      readonly stripUsage: boolean;
      /** The bytes to forward (the original buffer when nothing changed). */
      readonly body: Buffer;
      readonly rewritten: boolean;
      /** Output tokens the call may produce per choice (the cap or the field), null when unbounded. */
      readonly maxOutput: number | null;
      /** Choices per call (n, best_of). */
      readonly n: number;
    }
  | { readonly ok: false; readonly code: 'invalid_body' | 'model_not_allowed' | 'llm_parameter_not_allowed'; readonly rule: string };

const fail = (code: 'invalid_body' | 'model_not_allowed' | 'llm_parameter_not_allowed', rule: string): RequestVerdict => ({ ok: false, code, rule });

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

export interface RequestOptions {
  readonly models: ReadonlyMap<string, ModelEntry>;
  readonly grant: GrantLimits;
  readonly overMaxTokens: 'clamp' | 'refuse';
}

export function checkRequest(endpoint: Endpoint, obj: Record<string, unknown>, raw: Buffer, opts: RequestOptions): RequestVerdict {
  // A decided field spelled in another case is a second reading for frameworks that bind
  // names case-insensitively (Go's encoding/json does): refused, not guessed at.
  for (const k of Object.keys(obj)) {
    if (!DECIDED_FIELDS.has(k)) {
      const lower = k.toLowerCase();
      if (lower !== k && DECIDED_FIELDS.has(lower)) return fail('invalid_body', 'field_case');
    }
  }
  const name = obj.model;
  if (typeof name !== 'string') return fail('invalid_body', 'model');
  const model = opts.models.get(name);
  if (model === undefined) return fail('model_not_allowed', 'model');
  if (!opts.grant.allowsModel(name)) return fail('model_not_allowed', 'grant');

  const changes: Record<string, unknown> = {};
  let changed = false;
  const set = (k: string, v: unknown) => {
    changes[k] = v;
    changed = true;
  };

  let stream = false;
  if (obj.stream !== undefined && obj.stream !== null) {
    if (typeof obj.stream !== 'boolean') return fail('invalid_body', 'stream');
    stream = obj.stream && endpoint.dialect !== 'embeddings';
  }

  let n = 1;
  for (const f of endpoint.nFields) {
    const v = obj[f];
    if (v === undefined || v === null) continue;
    if (!isPositiveInt(v)) return fail('invalid_body', 'n');
    if (v > opts.grant.maxN) return fail('llm_parameter_not_allowed', 'n');
    if (v > n) n = v;
  }

  if (!opts.grant.tools) {
    for (const f of endpoint.toolFields) {
      const v = obj[f];
      if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
      return fail('llm_parameter_not_allowed', 'tools');
    }
  }

  let maxOutput: number | null = null;
  if (endpoint.maxTokensFields.length > 0) {
    const g = opts.grant.maxOutputTokens;
    const m = model.maxOutputTokens;
    const cap = g === null ? m : m === null ? g : Math.min(g, m);
    let present = false;
    for (const f of endpoint.maxTokensFields) {
      const v = obj[f];
      if (v === undefined || v === null) continue;
      if (!isPositiveInt(v)) return fail('invalid_body', 'max_tokens');
      present = true;
      let eff = v;
      if (cap !== null && v > cap) {
        if (opts.overMaxTokens === 'refuse') return fail('llm_parameter_not_allowed', 'max_tokens');
        set(f, cap);
        eff = cap;
      }
      maxOutput = maxOutput === null ? eff : Math.min(maxOutput, eff);
    }
    // No field: the model's own default could be far above the cap, so the cap is sent.
    if (!present && cap !== null) {
      set(endpoint.maxTokensFields[0] as string, cap);
      maxOutput = cap;
    }
  }

  let stripUsage = false;
  if (stream && endpoint.streamOptions) {
    const so = obj.stream_options;
    if (so === undefined || so === null) {
      set('stream_options', { include_usage: true });
      stripUsage = true;
    } else {
      if (typeof so !== 'object' || Array.isArray(so)) return fail('invalid_body', 'stream_options');
      const iu = (so as Record<string, unknown>).include_usage;
      if (iu !== undefined && iu !== null && typeof iu !== 'boolean') return fail('invalid_body', 'stream_options');
      if (iu !== true) {
        set('stream_options', { ...(so as Record<string, unknown>), include_usage: true });
        stripUsage = true;
      }
    }
  }

  if (model.upstream !== name) set('model', model.upstream);

  let body = raw;
  if (changed) {
    // JavaScript numbers are doubles: an integer beyond 2^53 (a seed, an id) would reach
    // the upstream as another number. Refused rather than silently changed.
    if (!numbersSurvive(raw.toString('utf8'))) return fail('invalid_body', 'number');
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(obj)) out[k] = k in changes ? changes[k] : obj[k];
    for (const k of Object.keys(changes)) if (!(k in obj)) out[k] = changes[k];
    body = Buffer.from(JSON.stringify(out), 'utf8');
  }
  return { ok: true, model, stream, stripUsage, body, rewritten: changed, maxOutput, n };
}

/**
 * Whether every number in well-formed JSON `text` keeps its value through JSON.parse and
 * JSON.stringify: an integer (no fraction, no exponent) must come back as the same digits,
 * and nothing may overflow to Infinity. Fractions survive: JSON.stringify writes the shortest text that
 * reads back as the same double, in any correct parser.
 */
export function numbersSurvive(text: string): boolean {
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: find its closing quote (an odd run of backslashes escapes one).
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) return true;
        let b = q - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        if ((q - 1 - b) % 2 === 0) {
          i = q;
          break;
        }
        j = q + 1;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      let integer = true;
      while (j < len) {
        const d = text.charCodeAt(j);
        if (d >= 0x30 && d <= 0x39) j++;
        else if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) {
          integer = false;
          j++;
        } else break;
      }
      const tok = text.slice(i, j);
      const v = Number(tok);
      if (!Number.isFinite(v)) return false;
      // An integer survives iff JavaScript writes it back as the same digits (beyond 2^53
      // most do not, and from 1e21 on it switches to exponent form).
      if (integer && tok !== '-0' && String(v) !== tok) return false;
      i = j - 1;
    }
  }
  return true;
}

/** Tokens reserved for a call before its usage is known: the prompt estimate plus the output it may produce. */
export function reservationFor(bodyBytes: number, maxOutput: number | null, n: number, defaultOutput: number): number {
  const prompt = Math.ceil(bodyBytes / 4);
  return prompt + n * (maxOutput ?? defaultOutput);
}
