/**
 * The request stage (`request`): refuses what the site cannot read in exactly one way,
 * before any other control looks at the request (docs/lifecycle.md#one-reading).
 *
 * - the path: escaped separators and double encodings (`escaped_path`), segments that are
 *   dot segments only to some frameworks, `;` parameters (`path_parameters`);
 * - header names with `_`, which CGI/WSGI servers read as `-` (`header_underscores: reject`;
 *   with `drop`, the default, the proxy leaves them out instead);
 * - `Transfer-Encoding` other than exactly `chunked` (RFC 9112 §6.1: 501);
 * - an `Upgrade` the site does not allow (`h2c`, …): never a tunnel. Without a body it
 *   becomes a plain request answered on the same socket (then closed); with one, 400.
 *
 * Runs right after the site's IP filter, so a denied client still learns nothing.
 */
import { ServerResponse } from 'node:http';
import type { RequestReadingConfig } from '../../config/schema.js';
import { canonicalPath, PATH_AMBIGUOUS_SEGMENT, PATH_DOUBLE_ENCODING, PATH_ESCAPED_SEPARATOR, PATH_PARAMETERS } from '../../http/path.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';

export const REQUEST = 'request';

export interface CompiledReading {
  readonly escapedPath: RequestReadingConfig['escaped_path'];
  readonly pathParameters: RequestReadingConfig['path_parameters'];
  readonly headerUnderscores: RequestReadingConfig['header_underscores'];
  /** Lowercase Upgrade protocols that may become a tunnel. */
  readonly upgrades: ReadonlySet<string>;
}

export function compileReading(defaults: RequestReadingConfig, site: Partial<RequestReadingConfig> | undefined): CompiledReading {
  return Object.freeze({
    escapedPath: site?.escaped_path ?? defaults.escaped_path,
    pathParameters: site?.path_parameters ?? defaults.path_parameters,
    headerUnderscores: site?.header_underscores ?? defaults.header_underscores,
    upgrades: new Set((site?.upgrades ?? defaults.upgrades).map((u) => u.toLowerCase())),
  });
}

const ESCAPED = new Refusal('ambiguous_path', REQUEST, 'escaped_path');
const AMBIGUOUS_SEGMENT = new Refusal('ambiguous_path', REQUEST, 'ambiguous_segment');
const DOUBLE_ENCODING = new Refusal('ambiguous_path', REQUEST, 'double_encoding');
const PARAMETERS = new Refusal('ambiguous_path', REQUEST, 'path_parameters');
const UNDERSCORE = new Refusal('bad_header', REQUEST, 'header_underscores');
const TRANSFER_ENCODING = new Refusal('unsupported_transfer_encoding', REQUEST, 'transfer_encoding');
const UPGRADE_WITH_BODY = new Refusal('bad_request', REQUEST, 'upgrade');

function hasUnderscoreName(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).indexOf('_') >= 0) return true;
  return false;
}

/** Exactly one Transfer-Encoding header whose value is the single coding `chunked`. */
function transferEncodingOk(raw: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length !== 17 || name.toLowerCase() !== 'transfer-encoding') continue;
    if (seen || (raw[i + 1] as string).trim().toLowerCase() !== 'chunked') return false;
    seen = true;
  }
  return true;
}

function upgradeAllowed(value: string, allowed: ReadonlySet<string>): boolean {
  // `Upgrade: websocket` (a list is possible, `h2c, websocket`: every one must be allowed).
  for (const p of value.split(',')) {
    const name = p.trim().toLowerCase();
    const slash = name.indexOf('/');
    if (!allowed.has(slash < 0 ? name : name.slice(0, slash))) return false;
  }
  return true;
}

/**
 * Gives an upgrade request the site does not allow a response of its own on the raw
 * socket Node handed over, so the pipeline handles it as a plain request; the connection
 * closes after the answer (Node no longer parses it).
 */
function asPlainRequest(ex: Exchange): void {
  const socket = ex.socket as import('node:net').Socket;
  const res = new ServerResponse(ex.req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  // Nothing reads this socket any more: once the answer is written, close it for good
  // (a client that keeps sending would otherwise hold it, and the exchange, open).
  res.once('finish', () => socket.destroySoon());
  ex.res = res;
}

export function createRequestStage(reading: CompiledReading): Stage {
  const { escapedPath, pathParameters, headerUnderscores, upgrades } = reading;
  return {
    id: REQUEST,
    run: function requestReading(ex: Exchange) {
      const flags = ex.pathFlags;
      if (flags !== 0) {
        if ((flags & PATH_ESCAPED_SEPARATOR) !== 0) {
          if (escapedPath === 'reject') return ESCAPED;
          if (escapedPath === 'keep') ex.path = canonicalPath(ex.rawPath, false).path as string;
        }
        // Decoding once cannot make a double encoding unambiguous: only `keep` forwards it.
        if ((flags & PATH_DOUBLE_ENCODING) !== 0 && escapedPath === 'decode') return DOUBLE_ENCODING;
        if ((flags & PATH_AMBIGUOUS_SEGMENT) !== 0 && escapedPath !== 'keep') return AMBIGUOUS_SEGMENT;
        if ((flags & PATH_PARAMETERS) !== 0 && pathParameters === 'reject') return PARAMETERS;
      }
      const req = ex.req;
      const raw = req.rawHeaders;
      if (headerUnderscores === 'reject' && hasUnderscoreName(raw)) return UNDERSCORE;
      if (req.headers['transfer-encoding'] !== undefined && !transferEncodingOk(raw)) return TRANSFER_ENCODING;
      if (ex.res === null) {
        const upgrade = req.headers.upgrade;
        if (upgrade !== undefined && !upgradeAllowed(upgrade, upgrades)) {
          const cl = req.headers['content-length'];
          if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')) return UPGRADE_WITH_BODY;
          asPlainRequest(ex);
        }
      }
      return undefined;
    },
  };
}
