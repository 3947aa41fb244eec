/**
 * Request-target parsing, the canonical path gatehouse forwards, and the normalization used
 * for ALL path matching (routing by prefix, rate-limit path classes, auth paths, policy).
 *
 * One reading (docs/lifecycle.md#one-reading): the upstream receives the canonical path
 * (canonicalPath: dot segments resolved, slashes merged, `\` as `/`, unreserved escapes
 * decoded) and every match is made on the normalized form of that same path. Spellings that
 * upstreams read in different ways — an encoded `/`, `\` or `.`, double encoding — are
 * refused, decoded, or (only where no control looks at the path) kept, per site.
 *
 * Matching still folds what upstreams may fold (case, `;params`, percent-decoding), so the
 * normalized form is deliberately the *union* of those readings: every spelling that some
 * upstream could treat as `/login` normalizes to `/login`. Over-matching is safe;
 * under-matching is a bypass.
 */
import { TextDecoder } from 'node:util';

export interface RequestTarget {
  /** The path, still percent-encoded (`*` for asterisk-form). */
  readonly path: string;
  /** The query without the leading `?`; '' when there is none. */
  readonly query: string;
  /** Lowercased `host[:port]` from an absolute-form target, else null. */
  readonly authority: string | null;
}

/** Whether c may appear in a request target at all: visible ASCII only. */
function isTargetChar(c: number): boolean {
  // Rejects C0 controls, space, DEL and every non-ASCII code unit. Node hands req.url over
  // as latin1, so raw UTF-8 bytes would show up as mojibake that no config pattern (real
  // Unicode strings) could match, while the %-encoded spelling of the same path would
  // match: refusing raw non-ASCII removes that mismatch. Conforming clients never send it.
  return c > 0x20 && c < 0x7f;
}

/** Authority characters: unreserved, sub-delims, ':', '[', ']', '%' (no '@': userinfo is refused). */
function isAuthorityChar(c: number): boolean {
  return (
    (c >= 48 && c <= 58) /* 0-9 : */ ||
    (c >= 65 && c <= 91) /* A-Z [ */ ||
    (c >= 97 && c <= 122) /* a-z */ ||
    c === 93 /* ] */ ||
    c === 45 /* - */ ||
    c === 46 /* . */ ||
    c === 95 /* _ */ ||
    c === 126 /* ~ */ ||
    (c >= 36 && c <= 44) /* $ % & ' ( ) * + , */ ||
    c === 33 /* ! */ ||
    c === 59 /* ; */ ||
    c === 61 /* = */
  );
}

function startsWithIgnoreCase(s: string, prefix: string): boolean {
  if (s.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if ((s.charCodeAt(i) | 0x20) !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Splits Node's `req.url` into path, query and (for absolute-form) authority. Accepts
 * origin-form (`/a?b`), absolute-form with http/https (`http://Host:8080/a?b`; path
 * defaults to `/`) and asterisk-form (`*`). Anything else, or any control character,
 * space or non-ASCII character, is null. A `#fragment` (never sent by conforming clients)
 * is stripped.
 */
export function parseTarget(url: string): RequestTarget | null {
  const len = url.length;
  if (len === 0) return null;
  let hash = -1;
  let qmark = -1;
  for (let i = 0; i < len; i++) {
    const c = url.charCodeAt(i);
    if (!isTargetChar(c)) return null;
    if (c === 35 /* # */ && hash < 0) hash = i;
    else if (c === 63 /* ? */ && qmark < 0 && hash < 0) qmark = i;
  }
  const end = hash < 0 ? len : hash;
  const first = url.charCodeAt(0);
  if (first === 47 /* / */) {
    if (qmark < 0) return { path: end === len ? url : url.slice(0, end), query: '', authority: null };
    return { path: url.slice(0, qmark), query: url.slice(qmark + 1, end), authority: null };
  }
  if (first === 42 /* * */) return len === 1 ? { path: '*', query: '', authority: null } : null;

  let authStart: number;
  if (startsWithIgnoreCase(url, 'http://')) authStart = 7;
  else if (startsWithIgnoreCase(url, 'https://')) authStart = 8;
  else return null;
  const pathEnd = qmark < 0 ? end : qmark;
  let authEnd = url.indexOf('/', authStart);
  if (authEnd < 0 || authEnd > pathEnd) authEnd = pathEnd;
  if (authEnd === authStart) return null; // `http:///x`: no host
  for (let i = authStart; i < authEnd; i++) if (!isAuthorityChar(url.charCodeAt(i))) return null;
  const authority = url.slice(authStart, authEnd).toLowerCase();
  if (!isValidAuthority(authority)) return null;
  const path = authEnd === pathEnd ? '/' : url.slice(authEnd, pathEnd);
  const query = qmark < 0 ? '' : url.slice(qmark + 1, end);
  return { path, query, authority };
}

/** `host` or `host:port` (port: 0-5 digits), host being a reg-name or `[IPv6]`. */
function isValidAuthority(a: string): boolean {
  let hostEnd: number;
  if (a.charCodeAt(0) === 91 /* [ */) {
    const close = a.indexOf(']');
    if (close < 2) return false;
    hostEnd = close + 1;
  } else {
    const colon = a.indexOf(':');
    hostEnd = colon < 0 ? a.length : colon;
    if (hostEnd === 0 || a.indexOf('[') >= 0 || a.indexOf(']') >= 0) return false;
  }
  if (hostEnd === a.length) return true;
  if (a.charCodeAt(hostEnd) !== 58 /* : */) return false;
  const portLen = a.length - hostEnd - 1;
  if (portLen > 5) return false;
  for (let i = hostEnd + 1; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// canonicalPath
// ---------------------------------------------------------------------------------------

/** The path held an encoded `/`, `\` or `.` (`%2F`, `%5C`, `%2E`) or a double encoding (`%25` + two hex digits). */
export const PATH_ESCAPED_SEPARATOR = 1;
/** A segment held `;` parameters. */
export const PATH_PARAMETERS = 2;
/**
 * A segment that some upstreams read as a dot segment and others do not: `..%3Bx` is `..`
 * to a framework that decodes before it cuts `;params`, and the name `..;x` to one that
 * cuts first. gatehouse cannot resolve it one way without deciding against the other.
 */
export const PATH_AMBIGUOUS_SEGMENT = 4;
/**
 * A double encoding (`%25` followed by two hex digits): decoded once it is an escape, twice
 * a character — frameworks differ in how often they decode, so only `keep` forwards it.
 */
export const PATH_DOUBLE_ENCODING = 8;

export interface CanonicalPath {
  /** The path to forward; null when it has an invalid percent-escape. */
  readonly path: string | null;
  /** PATH_ESCAPED_SEPARATOR | PATH_PARAMETERS, for the site's `request` settings. */
  readonly flags: number;
}

const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved: ALPHA DIGIT - . _ ~ (the `.` is handled apart). */
function isUnreserved(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x5f || b === 0x7e;
}

/** True when `path` is already canonical (the common case): no `%`, `\`, `;`, `//` or dot segment. */
function isCanonicalFast(path: string): boolean {
  const len = path.length;
  if (len === 0 || path.charCodeAt(0) !== 47) return false;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c === 47 /* / */) {
      const next = path.charCodeAt(i + 1);
      if (next === 47) return false;
      if (next === 46 /* . */) {
        const a = path.charCodeAt(i + 2);
        if (i + 2 === len || a === 47) return false;
        if (a === 46 && (i + 3 === len || path.charCodeAt(i + 3) === 47)) return false;
      }
    } else if (c === 37 /* % */ || c === 92 /* \ */ || c === 59 /* ; */) {
      return false;
    }
  }
  return true;
}

/**
 * The path gatehouse forwards upstream, from the raw (still encoded) path of the target.
 *
 * - `\` is a separator like `/`; empty segments are merged; `.` and `..` segments are
 *   resolved (never above the root), also when they carry `;params` (`..;/`, the Tomcat
 *   spelling); a trailing `/` (or trailing dot segment) stays a trailing `/`.
 * - Escapes of unreserved characters are decoded (`%61` → `a`); every other escape is kept
 *   with uppercase hex. Raw characters are kept as they are (the case too).
 * - `%2F`, `%5C`, `%2E` and double encodings set PATH_ESCAPED_SEPARATOR. With `decode`
 *   they are read as what they encode (`%2F` a separator, `%2E` a dot, `%25` stays `%25`);
 *   without, they are kept encoded. A caller refuses, decodes or keeps by site setting.
 *
 * - A segment that is a dot segment only to frameworks that decode `%3B` before cutting
 *   parameters sets PATH_AMBIGUOUS_SEGMENT.
 *
 * Every match is made on normalizePath of the result (never of the raw path): normalizing
 * the raw path could resolve a `..` against a segment that the forwarded path keeps.
 */
export function canonicalPath(raw: string, decode = false): CanonicalPath {
  if (isCanonicalFast(raw)) return { path: raw, flags: 0 };
  let flags = 0;
  const out: string[] = [];
  let cur = '';
  let paramsAt = -1;
  const endSegment = (): void => {
    const name = paramsAt < 0 ? cur : cur.slice(0, paramsAt);
    if (name === '..') out.pop();
    else if (name !== '' && name !== '.') {
      // Decoded first, `%3B` starts parameters too: `..%3Bx` would be a dot segment then.
      const enc = cur.indexOf('%3B');
      if (enc >= 0 && (paramsAt < 0 || enc < paramsAt)) {
        const decodedName = cur.slice(0, enc);
        if (decodedName === '.' || decodedName === '..') flags |= PATH_AMBIGUOUS_SEGMENT;
      }
      out.push(cur);
    }
    cur = '';
    paramsAt = -1;
  };
  const len = raw.length;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c === 47 /* / */ || c === 92 /* \ */) {
      endSegment();
      continue;
    }
    if (c === 37 /* % */) {
      const h = hexVal(raw.charCodeAt(i + 1));
      const l = h < 0 ? -1 : hexVal(raw.charCodeAt(i + 2));
      if (l < 0) return { path: null, flags };
      const b = (h << 4) | l;
      i += 2;
      if (b === 0x2f || b === 0x5c) {
        flags |= PATH_ESCAPED_SEPARATOR;
        if (decode) endSegment();
        else cur += b === 0x2f ? '%2F' : '%5C';
      } else if (b === 0x2e) {
        flags |= PATH_ESCAPED_SEPARATOR;
        cur += decode ? '.' : '%2E';
      } else if (isUnreserved(b)) {
        cur += String.fromCharCode(b);
      } else {
        if (b === 0x25 && hexVal(raw.charCodeAt(i + 1)) >= 0 && hexVal(raw.charCodeAt(i + 2)) >= 0) flags |= PATH_ESCAPED_SEPARATOR | PATH_DOUBLE_ENCODING;
        cur += '%' + HEX[h] + HEX[l];
      }
      continue;
    }
    if (c === 59 /* ; */) {
      flags |= PATH_PARAMETERS;
      if (paramsAt < 0) paramsAt = cur.length;
    }
    cur += raw[i];
  }
  // The last segment: `/a/` ends with an empty one, `/a/..` with a dot segment; both leave
  // a trailing slash, like normalizePath.
  const lastName = paramsAt < 0 ? cur : cur.slice(0, paramsAt);
  const trailing = lastName === '' || lastName === '.' || lastName === '..';
  endSegment();
  const path = out.length === 0 ? '/' : '/' + out.join('/') + (trailing ? '/' : '');
  return { path, flags };
}

// ---------------------------------------------------------------------------------------
// normalizePath
// ---------------------------------------------------------------------------------------

/**
 * Segment separators. `\` counts as `/` because IIS, Windows file servers and some
 * frameworks read it that way. Module-level so the regex is built once.
 */
const SEPARATORS = /[/\\]/;

/** Decoding rounds in total (the first one plus repeats for multiply-encoded input). */
const MAX_DECODE_ROUNDS = 4;

/** One shared strict decoder; `ignoreBOM` keeps a decoded U+FEFF instead of eating it. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1; // also for NaN (charCodeAt past the end)
}

function hasValidEscape(s: string): boolean {
  let i = s.indexOf('%');
  while (i >= 0) {
    if (hexVal(s.charCodeAt(i + 1)) >= 0 && hexVal(s.charCodeAt(i + 2)) >= 0) return true;
    i = s.indexOf('%', i + 1);
  }
  return false;
}

/**
 * One percent-decoding round: `%XX` → byte, other characters → their UTF-8 bytes, then
 * the bytes are read as UTF-8. `strict`: an invalid escape is an error (null); otherwise
 * it stays a literal `%`. Null also for invalid UTF-8 or a lone surrogate.
 */
function decodeRound(s: string, strict: boolean): string | null {
  const bytes = new Uint8Array(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const h = hexVal(s.charCodeAt(i + 1));
      const l = h < 0 ? -1 : hexVal(s.charCodeAt(i + 2));
      if (l >= 0) {
        bytes[n++] = (h << 4) | l;
        i += 2;
        continue;
      }
      if (strict) return null;
      bytes[n++] = 37;
    } else if (c < 0x80) {
      bytes[n++] = c;
    } else if (c < 0x800) {
      bytes[n++] = 0xc0 | (c >> 6);
      bytes[n++] = 0x80 | (c & 63);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) return null; // lone surrogate
      const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      bytes[n++] = 0xf0 | (cp >> 18);
      bytes[n++] = 0x80 | ((cp >> 12) & 63);
      bytes[n++] = 0x80 | ((cp >> 6) & 63);
      bytes[n++] = 0x80 | (cp & 63);
      i++;
    } else {
      bytes[n++] = 0xe0 | (c >> 12);
      bytes[n++] = 0x80 | ((c >> 6) & 63);
      bytes[n++] = 0x80 | (c & 63);
    }
  }
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return null;
  }
}

/**
 * Whether `path` is already in normalized form, judged by one cheap scan. True means
 * normalizePath would return it unchanged; false means "take the slow path" (it may be
 * normalized anyway). Control characters also answer false so the slow path rejects them.
 */
function isFastPath(path: string): boolean {
  const len = path.length;
  if (len === 0 || path.charCodeAt(0) !== 47) return false;
  for (let i = 0; i < len; i++) {
    const c = path.charCodeAt(i);
    if (c === 47 /* / */) {
      const next = path.charCodeAt(i + 1);
      if (next === 47) return false; // `//`
      if (next === 46 /* . */) {
        // `/.` or `/..` as a whole segment; `/.well-known` and `/..x` are plain names.
        const a = path.charCodeAt(i + 2);
        if (i + 2 === len || a === 47) return false;
        if (a === 46 && (i + 3 === len || path.charCodeAt(i + 3) === 47)) return false;
      }
    } else if (
      c < 0x20 ||
      c >= 0x7f || // DEL and non-ASCII (case folding, UTF-8 checks)
      (c >= 65 && c <= 90) || // uppercase
      c === 37 /* % */ ||
      c === 59 /* ; */ ||
      c === 92 /* \ */
    ) {
      return false;
    }
  }
  return true;
}

/**
 * Case folding for matching. ASCII: plain lowercase. Otherwise upper-then-lower, which
 * also folds characters whose lowercase is themselves but whose uppercase is shared with
 * another letter (`ſ`→`S`→`s`, `ı`→`I`→`i`) — a case-insensitive upstream may compare
 * that way. Finally final sigma `ς` becomes `σ`: toLowerCase picks between them by
 * position, which would make a prefix (`/ΑΣ` → `/ας`) miss its own extension (`/ασβ`).
 */
function foldCase(s: string, nonAscii: boolean): string {
  if (!nonAscii) return s.toLowerCase();
  // Twice, because one pass is not always a fixed point: `ẞ` → `ß` → `ss`. Two passes are
  // (checked over every code point), which keeps normalizePath idempotent.
  return foldOnce(foldOnce(s));
}

function foldOnce(s: string): string {
  return s.toUpperCase().toLowerCase().replaceAll('\u03c2', '\u03c3');
}

/**
 * The matching form of a request path (the part before `?`), or null if it is malformed.
 *
 * 1. Percent-decode every escape (`%2F` → `/`, `%5C` → `\` included). An invalid escape in
 *    the input (`%zz`, `%4`) is null. While the result still contains a valid escape,
 *    decode again (at most 4 rounds in all) so `%252F` cannot hide a `/`; escapes that are
 *    invalid after a later round stay literal. Still encoded after 4 rounds: null.
 * 2. Bytes are UTF-8 (invalid → null); C0 controls and DEL → null.
 * 3. `\` is `/`; `;params` are cut from every segment; empty and `.` segments dropped;
 *    `..` pops (never above root). A trailing `/` (or trailing `.`/`..` segment) is kept
 *    as a trailing `/`.
 * 4. Case-folded (see foldCase).
 * 5. A literal `%` left in the result is written `%25`, so the output is itself a valid
 *    input that normalizes to itself (idempotence) rather than an invalid escape.
 *
 * Already-normal paths (the common case) are returned as-is after one scan, no allocation.
 */
export function normalizePath(path: string): string | null {
  if (isFastPath(path)) return path;
  return normalizePathSlow(path);
}

/** The full algorithm, without the fast-path shortcut. Exported for tests. */
export function normalizePathSlow(path: string): string | null {
  let s = path;
  if (s.indexOf('%') >= 0) {
    let d = decodeRound(s, true);
    let rounds = 1;
    while (d !== null && hasValidEscape(d)) {
      if (rounds === MAX_DECODE_ROUNDS) return null;
      d = decodeRound(d, false);
      rounds++;
    }
    if (d === null) return null;
    s = d;
  }

  let nonAscii = false;
  let hasPercent = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return null;
    if (c >= 0x80) {
      nonAscii = true;
      // Without a decoding round nothing has checked surrogate pairing yet.
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = s.charCodeAt(i + 1);
        if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) return null;
        i++;
      }
    } else if (c === 37) {
      hasPercent = true;
    }
  }

  const out: string[] = [];
  let trailingSlash = false;
  const parts = s.split(SEPARATORS);
  for (let i = 0; i < parts.length; i++) {
    let seg = parts[i] as string;
    const semi = seg.indexOf(';');
    if (semi >= 0) seg = seg.slice(0, semi); // `;jsessionid=…` (Tomcat, Jetty, Spring)
    const last = i === parts.length - 1;
    if (seg === '' || seg === '.') {
      if (last) trailingSlash = true;
    } else if (seg === '..') {
      out.pop();
      if (last) trailingSlash = true;
    } else {
      out.push(seg);
    }
  }
  let result = out.length === 0 ? '/' : '/' + out.join('/') + (trailingSlash ? '/' : '');
  result = foldCase(result, nonAscii);
  if (hasPercent) {
    // Folding can turn non-ASCII into hex letters (`ﬀ` → `ff`), so a literal `%` may now
    // look like an escape (`%ﬀ` → `%ff`). Such a path has no single reading: refuse it.
    if (nonAscii && hasValidEscape(result)) return null;
    result = result.replaceAll('%', '%25');
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Path patterns
// ---------------------------------------------------------------------------------------

/**
 * Checks a path pattern: `/exact` or `/prefix*`. Returns an error message, or null if the
 * pattern is valid. Used by the config checker and by compilePathPatterns.
 */
export function validatePathPattern(p: string): string | null {
  if (typeof p !== 'string' || p.length === 0) return 'a path pattern must be a non-empty string';
  if (p.charCodeAt(0) !== 47) return `path pattern ${JSON.stringify(p)} must start with "/"`;
  const star = p.indexOf('*');
  if (star >= 0 && star !== p.length - 1) {
    return `path pattern ${JSON.stringify(p)}: "*" is only allowed as the last character (prefix match)`;
  }
  if (p.indexOf('?') >= 0 || p.indexOf('#') >= 0) {
    return `path pattern ${JSON.stringify(p)} must not contain "?" or "#" (it matches the path only)`;
  }
  const core = star >= 0 ? p.slice(0, -1) : p;
  if (normalizePath(core) === null) {
    return `path pattern ${JSON.stringify(p)} has an invalid percent-escape, invalid UTF-8 or a control character`;
  }
  return null;
}

/**
 * Compiles patterns into a matcher over NORMALIZED paths (outputs of normalizePath; the
 * matcher does not normalize). Patterns are normalized the same way, after removing the
 * trailing `*`, so `/Login*` matches `/login` and `/api/*` keeps its slash (matches
 * `/api/x`, not `/apix`). To err towards over-matching, since upstreams commonly treat
 * `/p` and `/p/` alike:
 * - an exact pattern `/p` also matches `/p/` (and `/p/` also matches `/p`);
 * - a prefix pattern `/p/*` also matches `/p` itself.
 * Throws TypeError naming the first invalid pattern.
 */
export function compilePathPatterns(patterns: readonly string[]): (normalizedPath: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    const err = validatePathPattern(p);
    if (err !== null) throw new TypeError(err);
    const isPrefix = p.endsWith('*');
    const core = normalizePath(isPrefix ? p.slice(0, -1) : p) as string;
    if (isPrefix) {
      prefixes.push(core);
      if (core.length > 1 && core.endsWith('/')) exact.add(core.slice(0, -1));
    } else {
      exact.add(core);
      if (core !== '/') exact.add(core.endsWith('/') ? core.slice(0, -1) : core + '/');
    }
  }
  // A prefix made redundant by a shorter one is dropped; `/` (from `/*`) matches all.
  prefixes.sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const p of prefixes) if (!kept.some((k) => p.startsWith(k))) kept.push(p);
  if (kept.includes('/')) return () => true;
  const n = kept.length;
  if (n === 0) return (path) => exact.has(path);
  return (path) => {
    if (exact.has(path)) return true;
    for (let i = 0; i < n; i++) if (path.startsWith(kept[i] as string)) return true;
    return false;
  };
}
