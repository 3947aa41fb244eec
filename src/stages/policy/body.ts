/**
 * Reading a bounded JSON request body for policy `body_fields`. The bytes are kept on the
 * exchange (`ex.body`) and the proxy sends them instead of the stream, so the upstream
 * gets exactly what the policy looked at — and only a body with one reading is read at
 * all (docs/lifecycle.md#one-reading).
 */
import { parseJsonObject, type JsonBodyError } from '../../http/json-body.js';
import type { Exchange } from '../../pipeline/exchange.js';

export class BodyReadError extends Error {
  constructor(readonly code: 'body_too_large' | 'request_timeout') {
    super(code);
  }
}

export function hasRequestBody(ex: Exchange): boolean {
  const h = ex.req.headers;
  const cl = h['content-length'];
  return cl !== undefined ? cl !== '0' : h['transfer-encoding'] !== undefined;
}

/** Reads the whole body, at most `limit` bytes, with an idle timeout between chunks. */
export function readBoundedBody(ex: Exchange, limit: number, idleMs: number): Promise<Buffer> {
  const req = ex.req;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyReadError('body_too_large'));
  // The client waits for 100 Continue before sending; the gateway admitted it this far.
  if (ex.res !== null && req.headers.expect?.toLowerCase() === '100-continue') ex.res.writeContinue();
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | null = null;
    const done = (err: Error | null) => {
      if (timer !== null) clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err !== null) {
        req.pause();
        fail(err);
      } else ok(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) return done(new BodyReadError('body_too_large'));
      chunks.push(c);
      timer?.refresh();
    };
    const onEnd = () => done(null);
    const onError = (e: Error) => done(e);
    const onAborted = () => done(new Error('client aborted the request body'));
    if (idleMs > 0) {
      timer = setTimeout(() => done(new BodyReadError('request_timeout')), idleMs);
      timer.unref();
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

export type BodyFields = Record<string, string | number | boolean>;

/** policy.body_field_types: the Cedar type of a body field. */
export type BodyFieldType = 'string' | 'long' | 'boolean';

/** Why a body was not read (the refusal's rule). */
export type BodyFieldsProblem = JsonBodyError | 'field_type' | 'field_case';

/**
 * The configured top-level fields of a JSON body that has exactly one reading
 * (http/json-body.ts), or why it has not: a selected field must be absent or of its
 * declared type (a string, a boolean or a safe integer) — anything else (null, a fraction,
 * an object, another type) is a value the
 * policy cannot see as the upstream will, so the body is refused, never read as "no field".
 */
export function readFields(body: Buffer, fields: readonly string[], folded: ReadonlySet<string>, types: Readonly<Record<string, BodyFieldType>> = {}): { fields: BodyFields } | { problem: BodyFieldsProblem } {
  const parsed = parseJsonObject(body, folded);
  if (!parsed.ok) return { problem: parsed.error };
  // `Model` alone is `model` to a case-insensitive binder (Go, ASP.NET) but absent to the
  // policy: a selected field may only be spelled exactly.
  for (const name of Object.keys(parsed.value)) {
    if (folded.has(name.toLowerCase()) && !fields.includes(name)) return { problem: 'field_case' };
  }
  const out: BodyFields = {};
  for (const f of fields) {
    if (!Object.hasOwn(parsed.value, f)) continue;
    const v = parsed.value[f];
    // The declared type (policy.body_field_types, default string) is the type the policy
    // schema promises; Cedar has no floats, so a long is a safe integer.
    const t = types[f] ?? 'string';
    if (t === 'string' ? typeof v === 'string' : t === 'boolean' ? typeof v === 'boolean' : typeof v === 'number' && Number.isSafeInteger(v)) out[f] = v as string | number | boolean;
    else return { problem: 'field_type' };
  }
  return { fields: out };
}
