/**
 * Reading a JSON request body the one way every upstream reads it, or not at all.
 *
 * Frameworks disagree on the edges of JSON: duplicate member names (JavaScript and Python
 * keep the last, some Go and Java parsers the first, others refuse), a byte-order mark
 * (skipped by some, an error for others), UTF-16 or invalid UTF-8 (decoded with
 * replacement characters by some). A control that decides on a body field (policy
 * `body_fields`, the LLM route's `model`) must see exactly the value the upstream will
 * act on, so a body with more than one reading is refused here instead of guessed at:
 * valid UTF-8, no BOM, one JSON value that is an object, and no member name twice in any
 * object (after unescaping, so `"mod\u0065l"` is `model`). Names listed in `foldedNames`
 * (lowercase) are also compared case-insensitively at the top level, because some
 * frameworks bind `Model` to a `model` field.
 */
import { TextDecoder } from 'node:util';

export type JsonBodyError = 'bom' | 'invalid_utf8' | 'invalid_json' | 'not_object' | 'duplicate_member';

export type JsonObjectResult =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly error: JsonBodyError; readonly detail?: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(error: JsonBodyError, detail?: string): JsonObjectResult {
  return detail === undefined ? { ok: false, error } : { ok: false, error, detail };
}

/** Parses `body` as a JSON object with exactly one reading (see the module comment). */
export function parseJsonObject(body: Uint8Array, foldedNames: ReadonlySet<string> = EMPTY): JsonObjectResult {
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return fail('bom');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return fail('invalid_utf8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('invalid_json');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return fail('not_object');
  // JSON.parse accepted the text, so the scan below can assume it is well formed.
  const dup = findDuplicateMember(text, foldedNames);
  if (dup !== null) return fail('duplicate_member', dup);
  return { ok: true, value: value as Record<string, unknown> };
}

const EMPTY: ReadonlySet<string> = new Set();

interface Frame {
  readonly object: boolean;
  /** Member names seen in this object (unescaped); null for arrays. */
  readonly names: Set<string> | null;
  /** In an object: the next string is a member name. */
  expectName: boolean;
}

/**
 * The first member name that occurs twice in one object of well-formed JSON `text`, or
 * null. One pass with an explicit stack (no recursion, so nesting depth cannot overflow).
 */
export function findDuplicateMember(text: string, foldedNames: ReadonlySet<string> = EMPTY): string | null {
  const stack: Frame[] = [];
  let top: Frame | null = null;
  /** Top-level names folded to lowercase, for the names listed in foldedNames. */
  const folded = new Set<string>();
  const len = text.length;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (top !== null && top.object && top.expectName) {
        const raw = text.slice(i + 1, end);
        // Escapes are rare in names; JSON.parse of the quoted name unescapes exactly.
        const name = raw.indexOf('\\') < 0 ? raw : (JSON.parse(text.slice(i, end + 1)) as string);
        const names = top.names as Set<string>;
        if (names.has(name)) return name;
        names.add(name);
        if (stack.length === 1 && foldedNames.size > 0) {
          const lower = name.toLowerCase();
          if (foldedNames.has(lower)) {
            if (folded.has(lower)) return name;
            folded.add(lower);
          }
        }
        top.expectName = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      top = { object: true, names: new Set(), expectName: true };
      stack.push(top);
    } else if (c === 0x5b /* [ */) {
      top = { object: false, names: null, expectName: false };
      stack.push(top);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      top = stack.length === 0 ? null : (stack[stack.length - 1] as Frame);
    } else if (c === 0x2c /* , */) {
      if (top !== null && top.object) top.expectName = true;
    }
  }
  return null;
}

/** Index of the closing quote of the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const q = text.indexOf('"', i);
    // Well-formed input always closes its strings.
    if (q < 0) return text.length - 1;
    // Count the backslashes before the quote: an odd number escapes it.
    let b = q - 1;
    while (text.charCodeAt(b) === 0x5c) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    i = q + 1;
  }
}

/**
 * Whether a Content-Type value names one of `types` (lowercase `type/subtype`) with no
 * parameter other than `charset=utf-8`: a body declared in another charset is read
 * differently by a framework that honours the parameter.
 */
export function isJsonContentType(value: string | undefined, types: ReadonlySet<string>): boolean {
  if (value === undefined) return false;
  const parts = value.split(';');
  const mediaType = (parts[0] as string).trim().toLowerCase();
  if (!types.has(mediaType)) return false;
  for (let i = 1; i < parts.length; i++) {
    const p = (parts[i] as string).trim().toLowerCase();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) return false;
    const name = p.slice(0, eq).trim();
    let v = p.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    if (name !== 'charset' || v !== 'utf-8') return false;
  }
  return true;
}
