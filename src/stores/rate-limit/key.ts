/**
 * Store keys for rate-limit counters.
 *
 * `rateKey(site, rule, client)` joins the three parts with ':' after escaping, inside
 * each part, the characters that could make two different triples produce the same key:
 * the separator ':' and the escape character '%' itself (percent-encoding, so the mapping
 * is injective: "a:b" + "c" and "a" + "b:c" never collide). '{' and '}' are escaped as
 * well because Redis Cluster treats a "{...}" substring as a hash tag; a client-supplied
 * value (an IP, a user id, a header) must never be able to pick the slot.
 *
 * The common case (plain ids, IPs without ':') takes the fast path with no allocation
 * beyond the final string. IPv6 addresses contain ':' and are escaped, which is fine.
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
  return `${escapePart(siteId)}:${escapePart(ruleId)}:${escapePart(clientKey)}`;
}
