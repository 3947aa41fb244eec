/**
 * The path the upstream receives: the canonical path the client sent (ex.path), minus the
 * site's `strip_prefix`, behind the member's base path. Every control decided on the
 * normalized form of the path the client sent (ex.normPath); one reading holds because the
 * stripped path normalizes to exactly that form minus the normalized prefix — checked for
 * each request, and a request where it would not hold is refused (docs/lifecycle.md#strip_prefix).
 */
import { normalizePath } from '../../http/path.js';

export interface CompiledStrip {
  /** Segments removed from the front of the canonical path. */
  readonly segments: number;
  /** The normalized prefix (`/api`), as routing matched it. */
  readonly normPrefix: string;
}

/** null when the site strips nothing. */
export function compileStrip(stripPrefix: string | undefined): CompiledStrip | null {
  if (stripPrefix === undefined) return null;
  const norm = normalizePath(stripPrefix) ?? '/';
  const trimmed = norm.endsWith('/') ? norm.slice(0, -1) : norm;
  if (trimmed === '') return null;
  return { segments: trimmed.split('/').length - 1, normPrefix: trimmed };
}

/**
 * The canonical `path` without its first `strip.segments` segments ('/' when nothing is
 * left), or null when that would not be the normalized path minus the prefix.
 */
export function strippedPath(path: string, normPath: string, strip: CompiledStrip): string | null {
  let i = 0;
  for (let k = 0; k < strip.segments; k++) {
    i = path.indexOf('/', i + 1);
    if (i < 0) {
      i = path.length;
      break;
    }
  }
  const out = i >= path.length ? '/' : path.slice(i);
  if (!normPath.startsWith(strip.normPrefix)) return null;
  const rest = normPath.slice(strip.normPrefix.length);
  const expected = rest === '' ? '/' : rest;
  return normalizePath(out) === expected ? out : null;
}
