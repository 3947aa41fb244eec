/**
 * IP literal normalization, CIDR sets and rate-limit keys.
 *
 * Everything that compares or keys on a client address (IP filter, trusted proxies, rate
 * limits, logs) goes through `normalizeIp` first, so that one address has exactly one
 * spelling. In particular an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, which is what a
 * dual-stack Node socket reports for IPv4 peers) IS the IPv4 address: it normalizes to
 * `1.2.3.4`, and CIDR sets treat mapped CIDRs as the IPv4 CIDRs they denote.
 *
 * The parsers are hand-written char-code scanners rather than regexes: `normalizeIp` runs
 * per connection and per X-Forwarded-For hop, and `CidrSet.has` per request. They accept
 * exactly what `net.isIP` accepts (property-tested), plus optional `[...]` around IPv6.
 */

/** A parsed CIDR. `words` are the masked network as int32 words (1 for IPv4, 4 for IPv6). */
export interface Cidr {
  readonly family: 4 | 6;
  /** Prefix length in bits, relative to `family` (0..32 or 0..128). */
  readonly prefix: number;
  /** Canonical `addr/prefix`, with the host bits cleared. */
  readonly text: string;
  /** Masked network address as int32 words: 1 word for IPv4, 4 words for IPv6. */
  readonly words: readonly number[];
  /**
   * For an IPv6 CIDR whose range contains all of `::ffff:0:0/96` (e.g. `::/0`, `::/64`):
   * it also contains every IPv4 address, since a mapped address is its IPv4 address.
   * Always false for IPv4 CIDRs.
   */
  readonly coversIpv4: boolean;
}

export interface CidrSet {
  /**
   * Whether `ip` is inside any entry. `ip` should be an output of `normalizeIp`; other
   * valid spellings work too (mapped forms are treated as IPv4), invalid input is `false`.
   */
  has(ip: string): boolean;
  /** Number of entries compiled. */
  readonly size: number;
  /** True when some entry has prefix 0 (`0.0.0.0/0`, `::/0`). */
  readonly trustsEverything: boolean;
}

// ---------------------------------------------------------------------------------------
// Low-level parsers (no allocation: results go into module-level scratch space).
// ---------------------------------------------------------------------------------------

/** Scratch output of `parseV6`: eight 16-bit groups. Single-threaded, so reuse is safe. */
const G = new Uint16Array(8);

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // ASCII lowercase; non-letters land outside a..f
  if (l >= 97 && l <= 102) return l - 87; // a-f
  return -1;
}

/**
 * Parses a dotted quad in s[start, end). Returns the address as an unsigned 32-bit number,
 * or -1. Leading zeros are rejected (`010.0.0.1`): some resolvers read them as octal, so
 * the spelling is ambiguous, and `net.isIPv4` rejects them too.
 */
function parseV4(s: string, start: number, end: number): number {
  let value = 0;
  let parts = 0;
  let i = start;
  while (true) {
    if (i >= end) return -1;
    let c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    let part = c - 48;
    let digits = 1;
    i++;
    while (i < end) {
      c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      if (part === 0) return -1; // leading zero
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
      i++;
    }
    value = value * 256 + part; // multiplication, not <<, to stay unsigned
    if (++parts === 4) return i === end ? value : -1;
    if (i >= end || s.charCodeAt(i) !== 46 /* . */) return -1;
    i++;
  }
}

/**
 * Parses an IPv6 address (no brackets, no zone) in s[start, end) into `G`. Accepts the
 * same spellings as `net.isIPv6`: 1-4 hex digits per group, at most one `::` standing for
 * one or more zero groups, and an optional dotted-quad tail taking the last two groups.
 */
function parseV6(s: string, start: number, end: number): boolean {
  let gi = 0; // groups written
  let dc = -1; // group index where `::` was seen
  let i = start;
  if (end - start < 2) return false;
  if (s.charCodeAt(i) === 58 /* : */) {
    if (s.charCodeAt(i + 1) !== 58) return false; // a lone leading ':'
    dc = 0;
    i += 2;
    if (i === end) {
      G.fill(0);
      return true;
    }
  }
  while (true) {
    const groupStart = i;
    let v = 0;
    let d = 0;
    while (i < end) {
      const h = hexDigit(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      if (++d > 4) break; // checked below; stop before v overflows meaningfully
      i++;
    }
    if (d > 4) return false;
    if (i < end && s.charCodeAt(i) === 46 /* . */) {
      // Dotted-quad tail: re-read this "group" as IPv4; it must run to the end.
      if (gi > 6) return false;
      const a = parseV4(s, groupStart, end);
      if (a < 0) return false;
      G[gi++] = a >>> 16;
      G[gi++] = a & 0xffff;
      break;
    }
    if (d === 0 || gi === 8) return false;
    G[gi++] = v;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && s.charCodeAt(i) === 58) {
      if (dc >= 0) return false; // second '::'
      dc = gi;
      i++;
      if (i === end) break;
    }
    // A single ':' at the very end leaves i === end, and the next round sees d === 0.
  }
  if (dc < 0) return gi === 8;
  if (gi > 7) return false; // '::' must stand for at least one group
  // Move the groups after '::' to the end and zero the gap.
  const tail = gi - dc;
  for (let k = 0; k < tail; k++) G[7 - k] = G[gi - 1 - k] as number;
  for (let k = dc; k < 8 - tail; k++) G[k] = 0;
  return true;
}

/** Whether `G` holds an IPv4-mapped address `::ffff:a.b.c.d`. */
function gIsMapped(): boolean {
  return G[0] === 0 && G[1] === 0 && G[2] === 0 && G[3] === 0 && G[4] === 0 && G[5] === 0xffff;
}

/** Zone id characters `net.isIPv6` accepts after '%': [0-9A-Za-z.:-]. */
function isZoneChar(c: number): boolean {
  return (
    (c >= 48 && c <= 58) /* 0-9 and ':' */ ||
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    c === 45 /* - */ ||
    c === 46 /* . */
  );
}

// Result kinds of `classify` (plain numbers rather than an enum: no runtime object).
const INVALID = 0;
const V4 = 4;
const V6 = 6;
type Kind = typeof INVALID | typeof V4 | typeof V6;

/** Result slot for `classify` when it returns V4 (the uint32 address). */
let v4Out = 0;

/**
 * Parses any accepted IP spelling. V4: the address is in `v4Out` (mapped IPv6 comes back
 * as V4 too). V6: the groups are in `G`. `allowZone` is off for CIDRs: a zone on a network
 * address means nothing, and silently dropping it could widen a rule.
 */
function classify(s: string, allowZone: boolean): Kind {
  let start = 0;
  let end = s.length;
  if (end === 0) return INVALID;
  let bracketed = false;
  if (s.charCodeAt(0) === 91 /* [ */) {
    if (s.charCodeAt(end - 1) !== 93 /* ] */) return INVALID;
    start = 1;
    end--;
    bracketed = true;
  }
  const colon = s.indexOf(':', start);
  if (colon < 0 || colon >= end) {
    // Brackets are for IPv6 only (`[1.2.3.4]` is not an address literal).
    if (bracketed) return INVALID;
    const a = parseV4(s, start, end);
    if (a < 0) return INVALID;
    v4Out = a;
    return V4;
  }
  const pct = s.indexOf('%', start);
  if (pct >= 0 && pct < end) {
    if (!allowZone || pct + 1 >= end) return INVALID;
    for (let i = pct + 1; i < end; i++) if (!isZoneChar(s.charCodeAt(i))) return INVALID;
    end = pct;
  }
  if (!parseV6(s, start, end)) return INVALID;
  if (gIsMapped()) {
    v4Out = (((G[6] as number) << 16) | (G[7] as number)) >>> 0;
    return V4;
  }
  return V6;
}

function formatV4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** Hex text of 0..255 without leading zeros, and zero-padded to two digits. */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16));
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lowercase hex of a 16-bit group without leading zeros (table lookups, no toString). */
function hexGroup(g: number): string {
  const hi = g >>> 8;
  return hi === 0 ? (HEX[g] as string) : (HEX[hi] as string) + (HEX2[g & 255] as string);
}

/** RFC 5952 text of `G`: lowercase, no leading zeros, longest (first on tie) run of two or more zero groups as `::`. */
function formatG(): string {
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (G[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && G[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) {
    let out = hexGroup(G[0] as number);
    for (let i = 1; i < 8; i++) out += ':' + hexGroup(G[i] as number);
    return out;
  }
  let out = '';
  for (let i = 0; i < bestStart; i++) out += (i === 0 ? '' : ':') + hexGroup(G[i] as number);
  out += '::';
  for (let i = bestStart + bestLen; i < 8; i++) out += (i === bestStart + bestLen ? '' : ':') + hexGroup(G[i] as number);
  return out;
}

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/**
 * Canonical form of an IP literal, or null if `s` is not one. IPv4 is returned as-is
 * (a valid dotted quad without leading zeros is already canonical). IPv6 becomes RFC 5952
 * text; IPv4-mapped IPv6 in any spelling becomes the plain IPv4 string. A zone id
 * (`fe80::1%eth0`) is dropped and `[...]` around IPv6 is accepted. No trimming: callers
 * that take addresses from headers trim first.
 */
export function normalizeIp(s: string): string | null {
  // Fast path for what a dual-stack socket reports for every IPv4 peer.
  if (s.length > 7 && s.charCodeAt(0) === 58 && s.startsWith('::ffff:') && parseV4(s, 7, s.length) >= 0) {
    return s.slice(7);
  }
  const kind = classify(s, true);
  if (kind === V4) {
    // Fast path: the plain dotted quad the caller passed in is already canonical.
    return s.charCodeAt(0) !== 91 && s.indexOf(':') < 0 ? s : formatV4(v4Out);
  }
  if (kind === V6) return formatG();
  return null;
}

/** Mask with the top `bits` (0..32) bits set, as int32. */
function maskOf(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return (0xffffffff << (32 - bits)) | 0;
}

/** The IPv4-mapped block `::ffff:0:0/96` as int32 words. */
const MAPPED_WORDS = [0, 0, 0xffff, 0] as const;

/**
 * Parses `addr/prefix` or a bare address. Host bits are accepted and cleared. An IPv6 CIDR
 * inside `::ffff:0:0/96` (prefix >= 96) becomes the IPv4 CIDR it denotes; a shorter one
 * that contains the whole mapped block gets `coversIpv4`. Prefix digits must be canonical
 * decimal (no sign, no leading zeros) so that a config typo does not silently mean something.
 */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  let prefix = -1;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (p.length === 0 || p.length > 3 || (p.length > 1 && p.charCodeAt(0) === 48)) return null;
    prefix = 0;
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c < 48 || c > 57) return null;
      prefix = prefix * 10 + (c - 48);
    }
  }
  // Remember whether the text was IPv6 before classify() folds mapped addresses to V4.
  const wasV6 = addr.indexOf(':') >= 0;
  const kind = classify(addr, false);
  if (kind === INVALID) return null;

  if (kind === V4) {
    let p4: number;
    if (wasV6) {
      // Mapped spelling: the prefix counts IPv6 bits.
      const p6 = prefix < 0 ? 128 : prefix;
      if (p6 > 128) return null;
      if (p6 < 96) return v6Cidr(p6); // wider than the mapped block: stays IPv6 (G still holds it)
      p4 = p6 - 96;
    } else {
      p4 = prefix < 0 ? 32 : prefix;
      if (p4 > 32) return null;
    }
    const net = (v4Out & maskOf(p4)) >>> 0;
    return {
      family: 4,
      prefix: p4,
      text: `${formatV4(net)}/${p4}`,
      words: [net | 0],
      coversIpv4: false,
    };
  }
  const p6 = prefix < 0 ? 128 : prefix;
  if (p6 > 128) return null;
  return v6Cidr(p6);
}

/** Builds an IPv6 Cidr from `G` (clearing host bits in place). */
function v6Cidr(prefix: number): Cidr {
  const words: number[] = [];
  let covers = prefix <= 96;
  for (let w = 0; w < 4; w++) {
    const m = maskOf(prefix - 32 * w);
    const word = ((((G[2 * w] as number) << 16) | (G[2 * w + 1] as number)) & m) | 0;
    words.push(word);
    if (covers && (MAPPED_WORDS[w as 0 | 1 | 2 | 3] & m) !== word) covers = false;
    G[2 * w] = word >>> 16;
    G[2 * w + 1] = word & 0xffff;
  }
  return { family: 6, prefix, text: `${formatG()}/${prefix}`, words, coversIpv4: covers };
}

/**
 * Compiles a CIDR list into a matcher. Throws TypeError naming the first invalid entry.
 * Matching is a linear scan over typed arrays (a few int compares per entry, no strings),
 * which stays cheap for hundreds of entries; prefix-0 entries short-circuit.
 */
export function compileCidrs(list: readonly string[]): CidrSet {
  const cidrs: Cidr[] = [];
  for (const entry of list) {
    const c = typeof entry === 'string' ? parseCidr(entry) : null;
    if (c === null) throw new TypeError(`invalid CIDR or IP address: ${JSON.stringify(entry)}`);
    cidrs.push(c);
  }
  const v4 = cidrs.filter((c) => c.family === 4);
  const v6 = cidrs.filter((c) => c.family === 6);
  const v4Nets = new Int32Array(v4.length);
  const v4Masks = new Int32Array(v4.length);
  v4.forEach((c, i) => {
    v4Nets[i] = c.words[0] as number;
    v4Masks[i] = maskOf(c.prefix);
  });
  const v6Nets = new Int32Array(v6.length * 4);
  const v6Masks = new Int32Array(v6.length * 4);
  v6.forEach((c, i) => {
    for (let w = 0; w < 4; w++) {
      v6Nets[4 * i + w] = c.words[w] as number;
      v6Masks[4 * i + w] = maskOf(c.prefix - 32 * w);
    }
  });
  // An IPv6 entry containing the mapped block contains every IPv4 address as well.
  const allV4 = v4.some((c) => c.prefix === 0) || v6.some((c) => c.coversIpv4);
  const allV6 = v6.some((c) => c.prefix === 0);
  const total = cidrs.length;
  const n4 = v4.length;
  const n6 = v6.length;

  function hasV4(a: number): boolean {
    if (allV4) return true;
    const x = a | 0;
    for (let i = 0; i < n4; i++) {
      if ((x & (v4Masks[i] as number)) === v4Nets[i]) return true;
    }
    return false;
  }

  return {
    size: total,
    trustsEverything: cidrs.some((c) => c.prefix === 0),
    has(ip: string): boolean {
      if (total === 0 || typeof ip !== 'string') return false;
      // Plain IPv4 (the common case): skip the generic classifier.
      if (ip.indexOf(':') < 0) {
        if (n4 === 0 && !allV4) return false;
        const a = parseV4(ip, 0, ip.length);
        return a >= 0 && hasV4(a);
      }
      const kind = classify(ip, true);
      if (kind === V4) return hasV4(v4Out);
      if (kind !== V6) return false;
      if (allV6) return true;
      const w0 = ((G[0] as number) << 16) | (G[1] as number);
      const w1 = ((G[2] as number) << 16) | (G[3] as number);
      const w2 = ((G[4] as number) << 16) | (G[5] as number);
      const w3 = ((G[6] as number) << 16) | (G[7] as number);
      for (let i = 0, k = 0; i < n6; i++, k += 4) {
        if (
          (w0 & (v6Masks[k] as number)) === v6Nets[k] &&
          (w1 & (v6Masks[k + 1] as number)) === v6Nets[k + 1] &&
          (w2 & (v6Masks[k + 2] as number)) === v6Nets[k + 2] &&
          (w3 & (v6Masks[k + 3] as number)) === v6Nets[k + 3]
        ) {
          return true;
        }
      }
      return false;
    },
  };
}

// Rate-limit keys: one cache per prefix length in use (in practice exactly one). FIFO
// eviction keeps it bounded; a client rotating through its /64 only costs cache misses.
const RATE_KEY_CACHE_MAX = 4096;
const rateKeyCaches = new Map<number, Map<string, string>>();

/**
 * The rate-limit key for a normalized address: IPv4 unchanged; IPv6 masked to `ipv6Prefix`
 * bits as `canonical/prefix` (e.g. `2001:db8::/64`), because one IPv6 client typically
 * holds a whole /64 and could otherwise rotate addresses to dodge limits. Input that does
 * not parse is returned unchanged (it is still a stable key).
 */
export function rateKeyOf(ip: string, ipv6Prefix: number): string {
  if (ip.indexOf(':') < 0) return ip;
  if (!Number.isInteger(ipv6Prefix) || ipv6Prefix < 0 || ipv6Prefix > 128) {
    throw new RangeError(`ipv6Prefix must be an integer in 0..128, got ${ipv6Prefix}`);
  }
  let cache = rateKeyCaches.get(ipv6Prefix);
  if (cache === undefined) {
    cache = new Map();
    rateKeyCaches.set(ipv6Prefix, cache);
  }
  const hit = cache.get(ip);
  if (hit !== undefined) return hit;
  const kind = classify(ip, true);
  let key: string;
  if (kind === V4) key = formatV4(v4Out); // mapped spelling slipped through
  else if (kind === V6) key = v6Cidr(ipv6Prefix).text;
  else return ip;
  if (cache.size >= RATE_KEY_CACHE_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(ip, key);
  return key;
}
