import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { compileCidrs, normalizeIp, parseCidr, rateKeyOf } from './ip.js';

const RUNS = { numRuns: 2000 };

// ---------------------------------------------------------------------------------------
// Independent references (plain, slow, obviously-correct code).
// ---------------------------------------------------------------------------------------

/** Validity per node:net, plus the one extension normalizeIp makes: `[ipv6]`. */
function refValid(s: string): boolean {
  if (s.length >= 2 && s.startsWith('[') && s.endsWith(']')) return net.isIPv6(s.slice(1, -1));
  return net.isIP(s) !== 0;
}

/** Canonical text via WHATWG URL's IPv6 serializer (RFC 5952 compatible) + mapped → v4. */
function refNormalize(s: string): string | null {
  if (!refValid(s)) return null;
  let t = s.startsWith('[') ? s.slice(1, -1) : s;
  if (net.isIPv4(t)) return t;
  const pct = t.indexOf('%');
  if (pct >= 0) t = t.slice(0, pct);
  const host = new URL(`http://[${t}]/`).hostname.slice(1, -1);
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (m) {
    const hi = parseInt(m[1] as string, 16);
    const lo = parseInt(m[2] as string, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

/** An address as a 128-bit BigInt, IPv4 placed in ::ffff:0:0/96 (the identification we use). */
function toBig(ip: string): bigint {
  if (net.isIPv4(ip)) {
    return (0xffffn << 32n) | ip.split('.').reduce((a, p) => (a << 8n) | BigInt(Number(p)), 0n);
  }
  let t = ip.startsWith('[') ? ip.slice(1, -1) : ip;
  if (t.includes('%')) t = t.slice(0, t.indexOf('%'));
  const host = new URL(`http://[${t}]/`).hostname.slice(1, -1); // full groups, no v4 tail
  const [l, r] = host.includes('::') ? host.split('::') : [host, undefined];
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Reference CIDR membership on 128-bit numbers; an IPv4 CIDR /p is the mapped /(96+p). */
function refInCidr(ip: string, cidrAddr: string, prefix: number, family: 4 | 6): boolean {
  const p = BigInt(family === 4 ? 96 + prefix : prefix);
  const shift = 128n - p;
  return toBig(ip) >> shift === toBig(cidrAddr) >> shift;
}

function familyOf(ip: string): 'ipv4' | 'ipv6' {
  return net.isIPv4(ip) ? 'ipv4' : 'ipv6';
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

const hex4 = fc.integer({ min: 0, max: 0xffff });
/** Random case flips on a string. */
const randomCase = (s: string) =>
  fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((flips) =>
    [...s].map((ch, i) => (flips[i] ? ch.toUpperCase() : ch)).join(''),
  );
/** A group in a random spelling: any case, optional leading zeros up to 4 digits. */
const groupSpelling = (v: number) =>
  fc.integer({ min: v.toString(16).length, max: 4 }).chain((w) => randomCase(v.toString(16).padStart(w, '0')));

/** IPv4-mapped IPv6 in many spellings. */
const mappedV6 = fc.tuple(fc.ipV4(), hex4, hex4, fc.nat(5)).chain(([v4, hi, lo, form]) => {
  switch (form) {
    case 0:
      return fc.constant(`::ffff:${v4}`);
    case 1:
      return fc.constant(`0:0:0:0:0:ffff:${v4}`);
    case 2:
      return fc.tuple(groupSpelling(hi), groupSpelling(lo)).map(([a, b]) => `::FFFF:${a}:${b}`);
    case 3:
      return fc.tuple(groupSpelling(0xffff), groupSpelling(hi), groupSpelling(lo)).map(([f, a, b]) => `0::${f}:${a}:${b}`);
    case 4:
      return fc.constant(`[::ffff:${v4}]`);
    default:
      return fc.constant(`::ffff:${v4}%eth0`);
  }
});

/** An IPv6 address from eight groups, spelled with random case/zeros and optional `::`. */
const groupsArb = fc.oneof(
  fc.array(hex4, { minLength: 8, maxLength: 8 }),
  // many zeros, to exercise run selection
  fc.array(fc.oneof(fc.constant(0), fc.constant(0), hex4), { minLength: 8, maxLength: 8 }),
);
const spelledV6 = groupsArb.chain((groups) =>
  fc
    .tuple(
      fc.tuple(...groups.map((g) => groupSpelling(g))),
      fc.option(fc.tuple(fc.nat(7), fc.nat(8)), { nil: undefined }),
    )
    .map(([parts, cut]) => {
      if (cut) {
        // Replace a zero run [a, b) with '::' when it really is all zeros and non-empty.
        const a = cut[0];
        const b = Math.min(8, a + 1 + cut[1]);
        if (groups.slice(a, b).every((g) => g === 0)) {
          return `${parts.slice(0, a).join(':')}::${parts.slice(b).join(':')}`;
        }
      }
      return parts.join(':');
    }),
);

const validIp = fc.oneof(fc.ipV4(), fc.ipV6(), mappedV6, spelledV6, spelledV6.map((s) => `[${s}]`));

const ALPHABET = [...'0123456789abcdefABCDEFx:.%[]/ '];
const ipish = fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 45 });
/** A valid address with a few random character edits: most results are invalid, some not. */
const mutatedIp = fc
  .tuple(validIp, fc.array(fc.tuple(fc.nat(3), fc.nat(60), fc.constantFrom(...ALPHABET)), { minLength: 1, maxLength: 3 }))
  .map(([s, edits]) => {
    let t = s;
    for (const [op, pos, ch] of edits) {
      const i = pos % (t.length + 1);
      if (op === 0) t = t.slice(0, i) + ch + t.slice(i);
      else if (op === 1) t = t.slice(0, i) + t.slice(i + 1);
      else t = t.slice(0, i) + ch + t.slice(i + 1);
    }
    return t;
  });

// ---------------------------------------------------------------------------------------
// normalizeIp
// ---------------------------------------------------------------------------------------

test('normalizeIp: unit cases', () => {
  const cases: [string, string | null][] = [
    ['1.2.3.4', '1.2.3.4'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['010.0.0.1', null],
    ['1.2.3.04', null],
    ['256.0.0.1', null],
    ['1.2.3', null],
    ['1.2.3.4.5', null],
    ['1.2.3.', null],
    ['.1.2.3', null],
    ['1..2.3', null],
    ['0x1.2.3.4', null],
    [' 1.2.3.4', null],
    ['1.2.3.4 ', null],
    ['1.2.3.4%eth0', null],
    ['[1.2.3.4]', null],
    ['', null],
    ['::', '::'],
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['[::1', null],
    ['::1]', null],
    ['[[::1]]', null],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%eth0]', 'fe80::1'],
    ['fe80::1%', null],
    ['fe80::1%eth_0', null],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['0:0:0:0:0:ffff:7f00:1', '127.0.0.1'],
    ['[::ffff:127.0.0.1]', '127.0.0.1'],
    ['::ffff:127.0.0.1%lo', '127.0.0.1'],
    ['::ffff:999.1.1.1', null],
    ['::ffff:01.2.3.4', null],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated) is not mapped
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'], // IPv4-translated is not mapped either
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    [':::', null],
    [':', null],
    ['1::2::3', null],
    [':1::', null],
    ['1::2:', null],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1:2:3:4:5:6:7::8', null],
    ['1:2:3:4:5:6:7', null],
    ['12345::', null],
    ['g::', null],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1:2:3:4:5:6:7:1.2.3.4', null],
    ['::1.2.3.4:5', null],
  ];
  for (const [input, want] of cases) {
    assert.equal(normalizeIp(input), want, `normalizeIp(${JSON.stringify(input)})`);
    assert.equal(normalizeIp(input) !== null, refValid(input), `validity of ${JSON.stringify(input)} vs node:net`);
  }
});

test('normalizeIp: plain IPv4 is returned without re-formatting', () => {
  const s = ['1', '2', '3', '4'].join('.');
  assert.equal(normalizeIp(s), s);
});

test('property: normalizeIp validity agrees with net.isIP on arbitrary and mutated strings', () => {
  fc.assert(
    fc.property(fc.oneof(ipish, mutatedIp, fc.string({ maxLength: 20 })), (s) => {
      assert.equal(normalizeIp(s) !== null, refValid(s), JSON.stringify(s));
    }),
    { numRuns: 20000 },
  );
});

test('property: every valid spelling normalizes to the reference canonical form', () => {
  fc.assert(
    fc.property(validIp, (s) => {
      const n = normalizeIp(s);
      assert.notEqual(n, null, s);
      assert.equal(n, refNormalize(s), s);
      assert.ok(net.isIP(n as string) !== 0);
    }),
    RUNS,
  );
});

test('property: IPv4-mapped spellings normalize to plain IPv4', () => {
  fc.assert(
    fc.property(mappedV6, (s) => {
      assert.ok(net.isIPv4(normalizeIp(s) as string), s);
    }),
    RUNS,
  );
});

test('property: normalizeIp is idempotent', () => {
  fc.assert(
    fc.property(fc.oneof(validIp, mutatedIp), (s) => {
      const n = normalizeIp(s);
      if (n !== null) assert.equal(normalizeIp(n), n, s);
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------------------------------
// parseCidr / compileCidrs
// ---------------------------------------------------------------------------------------

test('parseCidr: unit cases', () => {
  const ok: [string, 4 | 6, number, string][] = [
    ['10.0.0.0/8', 4, 8, '10.0.0.0/8'],
    ['10.1.2.3/8', 4, 8, '10.0.0.0/8'], // host bits masked
    ['1.2.3.4', 4, 32, '1.2.3.4/32'],
    ['1.2.3.4/32', 4, 32, '1.2.3.4/32'],
    ['0.0.0.0/0', 4, 0, '0.0.0.0/0'],
    ['255.255.255.255/0', 4, 0, '0.0.0.0/0'],
    ['::/0', 6, 0, '::/0'],
    ['::1', 6, 128, '::1/128'],
    ['2001:DB8::1/64', 6, 64, '2001:db8::/64'],
    ['2001:db8::1/128', 6, 128, '2001:db8::1/128'],
    ['[2001:db8::]/32', 6, 32, '2001:db8::/32'],
    ['::ffff:10.0.0.0/104', 4, 8, '10.0.0.0/8'],
    ['::ffff:0a00:0/104', 4, 8, '10.0.0.0/8'],
    ['::ffff:1.2.3.4', 4, 32, '1.2.3.4/32'],
    ['::ffff:0:0/96', 4, 0, '0.0.0.0/0'],
    ['::ffff:1.2.3.4/64', 6, 64, '::/64'], // wider than the mapped block: stays IPv6
  ];
  for (const [input, family, prefix, text] of ok) {
    const c = parseCidr(input);
    assert.ok(c, input);
    assert.deepEqual([c.family, c.prefix, c.text], [family, prefix, text], input);
  }
  for (const bad of [
    '',
    '/8',
    '10.0.0.0/',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/+8',
    '10.0.0.0/08',
    '10.0.0.0/8/8',
    '10.0.0.0/ 8',
    '10.0.0/8',
    '::/129',
    '::ffff:1.2.3.4/129',
    'fe80::%eth0/64',
    '[1.2.3.4]/32',
    'garbage',
    '::ffff:999.0.0.0/104',
  ]) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('compileCidrs: unit cases', () => {
  const set = compileCidrs(['10.0.0.0/8', '192.168.1.1', '2001:db8::/32', '::1', '::ffff:172.16.0.0/108']);
  assert.equal(set.size, 5);
  assert.equal(set.trustsEverything, false);
  for (const ip of ['10.0.0.0', '10.255.255.255', '192.168.1.1', '2001:db8::1', '2001:db8:ffff::', '::1', '172.16.0.1', '172.31.255.255']) {
    assert.equal(set.has(ip), true, ip);
  }
  for (const ip of ['11.0.0.0', '9.255.255.255', '192.168.1.2', '2001:db9::', '::2', '172.32.0.0', '', 'garbage', '10.0.0']) {
    assert.equal(set.has(ip), false, ip);
  }
  // Unnormalized mapped input is treated as the IPv4 address it is.
  assert.equal(set.has('::ffff:10.1.2.3'), true);
  assert.equal(set.has('[::1]'), true);
});

test('compileCidrs: /0 entries, empty set, /32 and /128', () => {
  const empty = compileCidrs([]);
  assert.equal(empty.size, 0);
  assert.equal(empty.trustsEverything, false);
  assert.equal(empty.has('1.2.3.4'), false);
  assert.equal(empty.has('::1'), false);

  const all4 = compileCidrs(['0.0.0.0/0']);
  assert.equal(all4.trustsEverything, true);
  assert.equal(all4.has('1.2.3.4'), true);
  assert.equal(all4.has('::1'), false);

  // ::/0 contains ::ffff:0:0/96, i.e. every IPv4 address too (node:net BlockList agrees).
  const all6 = compileCidrs(['::/0']);
  assert.equal(all6.trustsEverything, true);
  assert.equal(all6.has('2001:db8::1'), true);
  assert.equal(all6.has('1.2.3.4'), true);

  const host4 = compileCidrs(['1.2.3.4/32']);
  assert.equal(host4.has('1.2.3.4'), true);
  assert.equal(host4.has('1.2.3.5'), false);
  const host6 = compileCidrs(['2001:db8::1/128']);
  assert.equal(host6.has('2001:db8::1'), true);
  assert.equal(host6.has('2001:db8::2'), false);
  // The highest bit set in every word: catches signed/unsigned comparison mistakes.
  const high = compileCidrs(['255.0.0.0/8', 'ffff:8000::/17', '8000:0:8000:0:8000:0:8000:0/128']);
  assert.equal(high.has('255.1.2.3'), true);
  assert.equal(high.has('ffff:8000::1'), true);
  assert.equal(high.has('ffff:0::1'), false);
  assert.equal(high.has('8000:0:8000:0:8000:0:8000:0'), true);
});

test('compileCidrs: loopback allowlist matches what a dual-stack socket reports', () => {
  const set = compileCidrs(['127.0.0.0/8']);
  assert.equal(set.has(normalizeIp('::ffff:127.0.0.1') as string), true);
  assert.equal(set.has('::1'), false);
});

test('compileCidrs: throws TypeError naming the bad entry', () => {
  assert.throws(() => compileCidrs(['10.0.0.0/8', '10.0.0.0/40']), (e: unknown) => e instanceof TypeError && e.message.includes('10.0.0.0/40'));
  assert.throws(() => compileCidrs(['nope']), TypeError);
});

/** A random CIDR: [address text as written, prefix, family]. Biased towards edge ranges. */
const v4Cidr = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => [a, p, 4] as const);
const v6CidrAddr = fc.oneof(
  fc.ipV6(),
  spelledV6,
  fc.ipV4().map((v4) => `::ffff:${v4}`), // inside the mapped block
  fc.constantFrom('::', '::ffff:0:0', '::fffe:0:0', '0:0:0:0:0:1::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
);
const v6Cidr = fc
  .tuple(v6CidrAddr, fc.oneof(fc.integer({ min: 0, max: 128 }), fc.integer({ min: 80, max: 112 })))
  .map(([a, p]) => [a, p, 6] as const);
const anyCidr = fc.oneof(v4Cidr, v6Cidr);

/** Addresses: random ones, mapped ones, and ones derived from a CIDR's address (hits). */
function addressesNear(cidrs: readonly (readonly [string, number, 4 | 6])[]) {
  const derived =
    cidrs.length === 0
      ? fc.ipV4()
      : fc.tuple(fc.constantFrom(...cidrs), fc.nat(127), fc.boolean()).map(([[a], bit, flip]) => {
          // Flip one bit of a CIDR's address (or none): lands inside or just outside.
          let n = toBig(a);
          if (flip) n ^= 1n << BigInt(bit);
          const isMapped = n >> 32n === 0xffffn;
          if (isMapped) return [Number((n >> 24n) & 255n), Number((n >> 16n) & 255n), Number((n >> 8n) & 255n), Number(n & 255n)].join('.');
          const groups: string[] = [];
          for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(16 * i)) & 0xffffn).toString(16));
          return groups.join(':');
        });
  return fc.oneof(fc.ipV4(), fc.ipV6(), mappedV6, derived, derived);
}

test('property: CidrSet.has agrees with node:net BlockList and a 128-bit reference', () => {
  fc.assert(
    fc.property(
      fc.array(anyCidr, { maxLength: 6 }).chain((cidrs) => fc.tuple(fc.constant(cidrs), fc.array(addressesNear(cidrs), { minLength: 1, maxLength: 10 }))),
      ([cidrs, addrs]) => {
        const set = compileCidrs(cidrs.map(([a, p]) => `${a}/${p}`));
        const bl = new net.BlockList();
        for (const [a, p, f] of cidrs) bl.addSubnet(a, p, f === 4 ? 'ipv4' : 'ipv6');
        for (const raw of addrs) {
          const ip = normalizeIp(raw);
          assert.ok(ip !== null, raw);
          const got = set.has(ip);
          // BlockList identifies mapped IPv6 with IPv4 in both directions, as we do; feed
          // it the normalized address with the family that address now has.
          assert.equal(got, bl.check(ip, familyOf(ip)), `BlockList: ${raw} (${ip}) in ${JSON.stringify(cidrs)}`);
          const ref = cidrs.some(([a, p, f]) => refInCidr(ip, a, p, f));
          assert.equal(got, ref, `reference: ${raw} (${ip}) in ${JSON.stringify(cidrs)}`);
          // The raw spelling gives the same answer as the normalized one.
          assert.equal(set.has(raw), got, `raw spelling ${raw}`);
        }
      },
    ),
    RUNS,
  );
});

test('property: parseCidr text is canonical and round-trips', () => {
  fc.assert(
    fc.property(anyCidr, ([a, p]) => {
      const c = parseCidr(`${a}/${p}`);
      assert.ok(c);
      const again = parseCidr(c.text);
      assert.ok(again);
      assert.deepEqual(again, c);
      const [addr, pfx] = c.text.split('/') as [string, string];
      assert.equal(normalizeIp(addr), addr);
      assert.equal(Number(pfx), c.prefix);
      assert.equal(compileCidrs([c.text]).has(normalizeIp(a) as string), true, `${a}/${p} contains its own address`);
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------------------------------
// rateKeyOf
// ---------------------------------------------------------------------------------------

test('rateKeyOf: unit cases', () => {
  assert.equal(rateKeyOf('1.2.3.4', 64), '1.2.3.4');
  assert.equal(rateKeyOf('2001:db8::1', 64), '2001:db8::/64');
  assert.equal(rateKeyOf('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::/64');
  assert.equal(rateKeyOf('2001:db8:1:2:3:4:5:6', 48), '2001:db8:1::/48');
  assert.equal(rateKeyOf('2001:db8:1:2:3:4:5:6', 128), '2001:db8:1:2:3:4:5:6/128');
  assert.equal(rateKeyOf('2001:db8:1:2:3:4:5:6', 0), '::/0');
  assert.equal(rateKeyOf('::ffff:1.2.3.4', 64), '1.2.3.4'); // unnormalized mapped input
  // cached answers are the same as fresh ones, and caches are per prefix
  assert.equal(rateKeyOf('2001:db8::1', 64), '2001:db8::/64');
  assert.equal(rateKeyOf('2001:db8::1', 56), '2001:db8::/56');
  assert.throws(() => rateKeyOf('::1', 129), RangeError);
  assert.throws(() => rateKeyOf('::1', 6.5), RangeError);
});

test('rateKeyOf: cache stays correct past its bound', () => {
  // 10k distinct /64s (the cache holds 4096), each asked twice.
  for (let round = 0; round < 2; round++) {
    for (let i = 1; i <= 10_000; i++) {
      const g = i.toString(16);
      assert.equal(rateKeyOf(`2001:db8:0:${g}:1:2:3:4`, 64), `2001:db8:0:${g}::/64`);
    }
  }
});

test('property: rateKeyOf agrees with the 128-bit reference and the key contains the address', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV6(), spelledV6), fc.integer({ min: 0, max: 128 }), (raw, prefix) => {
      const ip = normalizeIp(raw) as string;
      const key = rateKeyOf(ip, prefix);
      if (net.isIPv4(ip)) {
        assert.equal(key, ip);
        return;
      }
      const [addr, p] = key.split('/') as [string, string];
      assert.equal(Number(p), prefix);
      assert.equal(normalizeIp(addr), addr);
      const shift = BigInt(128 - prefix);
      assert.equal(toBig(addr), (toBig(ip) >> shift) << shift);
      assert.equal(compileCidrs([key]).has(ip), true);
      assert.equal(rateKeyOf(ip, prefix), key);
    }),
    RUNS,
  );
});
