/**
 * Reading token usage out of an upstream answer while it streams to the client, never
 * holding it (docs/llm.md#usage):
 *
 * - JSON answers: a copy of the body (up to a bound) is parsed when it ends; `usage` is
 *   OpenAI's `{prompt_tokens, completion_tokens, total_tokens}` or the Responses API's /
 *   Anthropic's `{input_tokens, output_tokens, ...}` (Anthropic's cache read/creation
 *   tokens are input tokens too).
 * - Server-sent events: each complete `data:` event is parsed as it passes. OpenAI chat
 *   and completions send usage in a last chunk (asked for with
 *   `stream_options.include_usage`; when the gateway asked, not the client, that one
 *   event is taken out of the stream and everything else passes unchanged); the Responses
 *   API in `response.completed`; Anthropic the input tokens in `message_start` and the
 *   running output count in `message_delta`. The text of the deltas is counted too, for
 *   the estimate when a stream ends early.
 *
 * Chunks pass through as they come; only in strip mode is an incomplete trailing event
 * held until its end (it carries nothing a client could use before then).
 */
import type { Dialect } from './endpoints.js';

export interface Usage {
  readonly prompt: number;
  readonly completion: number;
  readonly total: number;
}

/** Most bytes of a JSON answer kept for parsing; a larger answer's usage is estimated. */
export const MAX_JSON_COPY = 8 * 1024 * 1024;
/** Longest SSE line parsed; a longer one ends parsing (the rest passes through). */
const MAX_LINE = 1024 * 1024;

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** Usage from an OpenAI / Anthropic usage object, or null when it is not one. */
export function usageOf(u: unknown): Usage | null {
  if (u === null || typeof u !== 'object' || Array.isArray(u)) return null;
  const o = u as Record<string, unknown>;
  let prompt = count(o.prompt_tokens) ?? count(o.input_tokens);
  if (prompt === null) return null;
  // Anthropic reports cached input apart from input_tokens; both are billed input.
  prompt += (count(o.cache_creation_input_tokens) ?? 0) + (count(o.cache_read_input_tokens) ?? 0);
  const completion = count(o.completion_tokens) ?? count(o.output_tokens) ?? 0;
  const total = count(o.total_tokens) ?? prompt + completion;
  return { prompt, completion, total: Math.max(total, prompt + completion) };
}

/** Characters of generated text in one streamed event (for the estimate of an interrupted stream). */
function textChars(d: Record<string, unknown>): number {
  let n = 0;
  const add = (v: unknown) => {
    if (typeof v === 'string') n += v.length;
  };
  const choices = d.choices;
  if (Array.isArray(choices)) {
    for (const c of choices) {
      if (c === null || typeof c !== 'object') continue;
      const ch = c as Record<string, unknown>;
      add(ch.text);
      const delta = ch.delta as Record<string, unknown> | undefined;
      if (delta !== null && typeof delta === 'object') {
        add(delta.content);
        add(delta.refusal);
        const calls = delta.tool_calls;
        if (Array.isArray(calls)) for (const t of calls) add((t as { function?: { arguments?: unknown } } | null)?.function?.arguments);
      }
    }
  }
  // Responses API deltas and Anthropic content_block_delta.
  const delta = d.delta;
  if (typeof delta === 'string') n += delta.length;
  else if (delta !== null && typeof delta === 'object') {
    const dd = delta as Record<string, unknown>;
    add(dd.text);
    add(dd.partial_json);
    add(dd.thinking);
  }
  return n;
}

export type BodyKind = 'json' | 'sse' | 'other';

export function bodyKind(contentType: string | undefined): BodyKind {
  if (contentType === undefined) return 'other';
  const t = (contentType.split(';')[0] as string).trim().toLowerCase();
  if (t === 'text/event-stream') return 'sse';
  if (t === 'application/json' || t.endsWith('+json')) return 'json';
  return 'other';
}

export class UsageReader {
  /** Usage as reported (complete), or null. */
  usage: Usage | null = null;
  /** Input tokens known before the end (Anthropic message_start), or null. */
  promptSoFar: number | null = null;
  /** Output tokens counted by the upstream so far (Anthropic message_delta), or null. */
  completionSoFar: number | null = null;
  /** Characters of streamed text seen (estimate of an interrupted stream). */
  textChars = 0;
  /** Bytes of the answer body from the upstream. */
  bytes = 0;
  private copy: Buffer[] | null;
  private copied = 0;
  private carry: Buffer | null = null;
  private broken = false;
  /** Strip mode: start of the current (incomplete) event within `carry`. */
  private dataLines: string[] = [];
  private eventName = '';

  constructor(
    readonly dialect: Dialect,
    readonly kind: BodyKind,
    /** Take the usage-only chunk the gateway asked for out of the stream. */
    readonly strip: boolean,
  ) {
    this.copy = kind === 'json' ? [] : null;
  }

  /** One chunk from the upstream; returns what to send to the client (null: nothing now). */
  feed(chunk: Buffer): Buffer | null {
    this.bytes += chunk.length;
    if (this.kind === 'json') {
      if (this.copy !== null) {
        this.copied += chunk.length;
        if (this.copied > MAX_JSON_COPY) this.copy = null;
        else this.copy.push(chunk);
      }
      return chunk;
    }
    if (this.kind !== 'sse' || this.broken) return chunk;
    return this.sse(chunk);
  }

  /** The answer ended normally. */
  end(): void {
    if (this.kind === 'json' && this.copy !== null) {
      try {
        const v = JSON.parse(Buffer.concat(this.copy, this.copied).toString('utf8')) as unknown;
        if (v !== null && typeof v === 'object') this.usage = usageOf((v as Record<string, unknown>).usage);
      } catch {
        // Not the expected shape: usage stays unknown and is estimated.
      }
      this.copy = null;
    } else if (this.kind === 'sse' && this.carry !== null && !this.broken) {
      // A last event without its blank line.
      this.sse(Buffer.from('\n\n'));
    }
    if (this.usage === null && this.dialect === 'messages' && this.promptSoFar !== null && this.completionSoFar !== null && this.sawStop) {
      this.usage = { prompt: this.promptSoFar, completion: this.completionSoFar, total: this.promptSoFar + this.completionSoFar };
    }
  }

  /** Anthropic: message_stop seen (the counts in message_start/message_delta are final). */
  private sawStop = false;

  private sse(chunk: Buffer): Buffer | null {
    const data = this.carry === null ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = null;
    let pos = 0;
    /** Strip mode: bytes from `keepFrom` up to the end of the last complete event are sent. */
    const out: Buffer[] | null = this.strip ? [] : null;
    let eventStart = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, pos);
      if (nl < 0) break;
      let end = nl;
      if (end > pos && data[end - 1] === 0x0d) end--;
      if (end === pos) {
        // Blank line: the event is complete.
        const drop = this.event();
        if (out !== null && !drop) out.push(data.subarray(eventStart, nl + 1));
        eventStart = nl + 1;
      } else {
        this.line(data.toString('utf8', pos, end));
      }
      pos = nl + 1;
    }
    const rest = data.length - (out !== null ? eventStart : pos);
    if (rest > MAX_LINE) {
      // Not an event stream we can read: stop parsing, pass everything on as it comes.
      this.broken = true;
      if (out !== null) {
        out.push(data.subarray(eventStart));
        return Buffer.concat(out);
      }
      return chunk;
    }
    if (out !== null) {
      if (eventStart < data.length) this.carry = Buffer.from(data.subarray(eventStart));
      // The lines of the held event are parsed again when it completes.
      if (eventStart < data.length) {
        this.dataLines = [];
        this.eventName = '';
      }
      if (out.length === 0) return null;
      return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    }
    if (pos < data.length) this.carry = Buffer.from(data.subarray(pos));
    return chunk;
  }

  private line(l: string): void {
    if (l.startsWith('data:')) this.dataLines.push(l.charCodeAt(5) === 0x20 ? l.slice(6) : l.slice(5));
    else if (l.startsWith('event:')) this.eventName = l.slice(l.charCodeAt(6) === 0x20 ? 7 : 6);
  }

  /** One complete event; returns true when it is to be taken out of the stream. */
  private event(): boolean {
    const lines = this.dataLines;
    this.dataLines = [];
    this.eventName = '';
    if (lines.length === 0) return false;
    const payload = lines.length === 1 ? (lines[0] as string) : lines.join('\n');
    if (payload === '[DONE]' || payload.charCodeAt(0) !== 0x7b /* { */) return false;
    let d: Record<string, unknown>;
    try {
      d = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      return false;
    }
    if (d === null || typeof d !== 'object') return false;
    this.textChars += textChars(d);
    switch (this.dialect) {
      case 'chat':
      case 'completions': {
        const u = usageOf(d.usage);
        if (u !== null) {
          this.usage = u;
          // The usage-only chunk (choices: []) the gateway asked for, not the client.
          return this.strip && Array.isArray(d.choices) && d.choices.length === 0;
        }
        return false;
      }
      case 'responses': {
        const r = d.response as Record<string, unknown> | undefined;
        if (r !== null && typeof r === 'object') {
          const u = usageOf(r.usage);
          if (u !== null) this.usage = u;
        }
        return false;
      }
      case 'messages': {
        if (d.type === 'message_start') {
          const m = d.message as Record<string, unknown> | undefined;
          const u = m !== null && typeof m === 'object' ? usageOf(m.usage) : null;
          if (u !== null) {
            this.promptSoFar = u.prompt;
            this.completionSoFar = u.completion;
          }
        } else if (d.type === 'message_delta') {
          const u = d.usage as Record<string, unknown> | undefined;
          if (u !== null && typeof u === 'object') {
            const out = count(u.output_tokens);
            if (out !== null) this.completionSoFar = out;
            // Newer API versions repeat the input counts here.
            const full = usageOf(u);
            if (full !== null && count(u.input_tokens) !== null) this.promptSoFar = full.prompt;
          }
        } else if (d.type === 'message_stop') {
          this.sawStop = true;
        }
        return false;
      }
      default:
        return false;
    }
  }
}
