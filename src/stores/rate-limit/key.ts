/**
 * Store keys for rate-limit counters: `site:rule:client`.
 *
 * Unambiguous: inside the site id and the rule id, the separator ':' and the escape
 * character '%' are percent-encoded ('%3A', '%25'), so neither contains a raw ':'. The key
 * therefore splits uniquely at its first two ':' and everything after the second one is
 * the client key, taken VERBATIM (IPv6 addresses keep their colons). That makes the
 * mapping injective ("a:b" + "c" never collides with "a" + "b:c") and gives the property
 * the rate-limit stage relies on to build keys with one concatenation per request:
 *
 *   rateKey(site, rule, client) === rateKey(site, rule, '') + client
 *
 * '{' and '}' are escaped in the site and rule ids as well ('%7B', '%7D') so that
 * configuration ids never form a Redis Cluster hash tag by accident.
 *
 * The Redis store prepends its own prefix (default 'gatehouse:rl:'); the memory store
 * uses the key as is.
 */

const NEEDS_ESCAPE = /[%:{}]/;
const ESCAPE_ALL = /[%:{}]/g;

function escapeChar(c: string): string {
  switch (c) {
    case '%':
      return '%25';
    case ':':
      return '%3A';
    case '{':
      return '%7B';
    default:
      return '%7D';
  }
}

function escapePart(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPE_ALL, escapeChar) : s;
}

export function rateKey(siteId: string, ruleId: string, clientKey: string): string {
  return `${escapePart(siteId)}:${escapePart(ruleId)}:${clientKey}`;
}
