import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { createClientIpResolver, parseForwardedEntry, parseForwardedFor } from './client-ip.js';
import { normalizeIp } from './ip.js';

const resolver = createClientIpResolver({ trustedProxies: ['10.0.0.0/8', '2001:db8:ffff::/48', '::1'] });

test('untrusted peer: X-Forwarded-For is ignored, whatever it says', () => {
  assert.equal(resolver('1.1.1.1', '2.2.2.2'), '1.1.1.1');
  assert.equal(resolver('1.1.1.1', '10.0.0.5'), '1.1.1.1'); // spoofing a trusted proxy
  assert.equal(resolver('1.1.1.1', 'garbage'), '1.1.1.1');
  assert.equal(resolver('2001:db8::1', '2.2.2.2'), '2001:db8::1');
});

test('trusted peer without X-Forwarded-For: the peer', () => {
  assert.equal(resolver('10.0.0.1', undefined), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', ''), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', ' , ,\t'), '10.0.0.1');
});

test('trusted peer: rightmost untrusted entry is the client', () => {
  assert.equal(resolver('10.0.0.1', '1.1.1.1'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, 10.0.0.2'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1,10.0.0.2,10.0.0.3'), '1.1.1.1');
  // The client prepended its own fake entries; the trusted proxy appended the real one.
  assert.equal(resolver('10.0.0.1', '6.6.6.6, 10.0.0.9, 1.1.1.1'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '6.6.6.6, 1.1.1.1, 10.0.0.2'), '1.1.1.1');
});

test('every entry trusted: the leftmost entry', () => {
  assert.equal(resolver('10.0.0.1', '10.0.0.3, 10.0.0.2'), '10.0.0.3');
  assert.equal(resolver('::1', '::1'), '::1');
});

test('garbage stops the walk at the hop that handed it over', () => {
  assert.equal(resolver('10.0.0.1', '1.1.1.1, garbage, 10.0.0.2'), '10.0.0.2');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, unknown'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, 1.2.3'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, 1.1.1.1:99999'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, 1.1.1.1:'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, [1.1.1.1]'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, [::1]x'), '10.0.0.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, "1.1.1.1"'), '10.0.0.1');
  // untrusted entries to the right of the garbage still win
  assert.equal(resolver('10.0.0.1', 'garbage, 1.1.1.1'), '1.1.1.1');
});

test('entries with ports, brackets, whitespace and repeated headers joined by Node', () => {
  assert.equal(resolver('10.0.0.1', '1.1.1.1:5678'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '[2001:db8::1]:443'), '2001:db8::1');
  assert.equal(resolver('10.0.0.1', '[2001:DB8::1]'), '2001:db8::1');
  assert.equal(resolver('10.0.0.1', '2001:db8:0::1'), '2001:db8::1');
  assert.equal(resolver('10.0.0.1', ' \t1.1.1.1 \t'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1,, 10.0.0.2 ,'), '1.1.1.1');
  // `X-Forwarded-For: 1.1.1.1` + `X-Forwarded-For: 10.0.0.2, 10.0.0.3` as Node joins them
  assert.equal(resolver('10.0.0.1', '1.1.1.1, 10.0.0.2, 10.0.0.3'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '[10.0.0.2]:80'), '10.0.0.1'); // brackets are IPv6-only
});

test('IPv6 and IPv4-mapped proxies and clients', () => {
  // A dual-stack socket reports IPv4 peers mapped; the caller normalizes it first.
  const peer = normalizeIp('::ffff:10.0.0.1') as string;
  assert.equal(peer, '10.0.0.1');
  assert.equal(resolver(peer, '1.1.1.1'), '1.1.1.1');
  // Mapped entries are their IPv4 address, both for trust and for the answer.
  assert.equal(resolver('10.0.0.1', '::ffff:1.1.1.1'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, ::ffff:10.0.0.2'), '1.1.1.1');
  assert.equal(resolver('10.0.0.1', '1.1.1.1, [::ffff:a00:2]:80'), '1.1.1.1');
  // IPv6 proxies
  assert.equal(resolver('2001:db8:ffff::1', '2001:db8::5, 2001:db8:ffff::2'), '2001:db8::5');
  assert.equal(resolver('::1', '[fe80::1%eth0]:80'), 'fe80::1');
  assert.equal(resolver('2001:db8::1', '1.1.1.1'), '2001:db8::1'); // outside the /48
  // mapped trusted proxy in the config
  const r = createClientIpResolver({ trustedProxies: ['::ffff:192.168.0.0/112'] });
  assert.equal(r('192.168.3.4', '1.1.1.1'), '1.1.1.1');
  assert.equal(r('192.169.0.1', '1.1.1.1'), '192.169.0.1');
});

test('no trusted proxies: always the peer', () => {
  const r = createClientIpResolver({ trustedProxies: [] });
  assert.equal(r('1.1.1.1', '2.2.2.2'), '1.1.1.1');
  assert.equal(r('::1', undefined), '::1');
});

test('invalid trusted proxy entry throws TypeError', () => {
  assert.throws(() => createClientIpResolver({ trustedProxies: ['10.0.0.0/8', 'proxy.local'] }), /proxy\.local/);
});

test('parseForwardedFor / parseForwardedEntry', () => {
  assert.deepEqual(parseForwardedFor(undefined), []);
  assert.deepEqual(parseForwardedFor(''), []);
  assert.deepEqual(parseForwardedFor(' a , b,,\tc\t,'), ['a', 'b', 'c']);
  assert.deepEqual(parseForwardedFor('1.1.1.1, [::1]:80'), ['1.1.1.1', '[::1]:80']);
  const cases: [string, string | null][] = [
    ['1.1.1.1', '1.1.1.1'],
    [' 1.1.1.1 ', '1.1.1.1'],
    ['1.1.1.1:0', '1.1.1.1'],
    ['1.1.1.1:65535', '1.1.1.1'],
    ['1.1.1.1:65536', null],
    ['1.1.1.1:123456', null],
    ['1.1.1.1:x', null],
    ['::1', '::1'],
    ['::1:80', '::1:80'], // bare IPv6 never carries a port
    ['[::1]', '::1'],
    ['[::1]:80', '::1'],
    ['[::1]:', null],
    ['[::1', null],
    ['[1.1.1.1]', null],
    ['::ffff:1.1.1.1', '1.1.1.1'],
    ['[::ffff:1.1.1.1]:1', '1.1.1.1'],
    ['unknown', null],
    ['', null],
    ['010.1.1.1', null],
  ];
  for (const [input, want] of cases) assert.equal(parseForwardedEntry(input), want, JSON.stringify(input));
});

// ---------------------------------------------------------------------------------------
// Property test against a plain reference model.
// ---------------------------------------------------------------------------------------

const stripOws = (s: string) => s.replace(/^[ \t]+|[ \t]+$/g, '');

/** Reference for one element, written independently with regexes and node:net. */
function refEntry(e: string): string | null {
  let m = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(e);
  if (m) {
    if (m[2] !== undefined && Number(m[2]) > 65535) return null;
    return net.isIPv6(m[1] as string) ? normalizeIp(m[1] as string) : null;
  }
  m = /^([0-9.]+):(\d{1,5})$/.exec(e);
  if (m) return net.isIPv4(m[1] as string) && Number(m[2]) <= 65535 ? (m[1] as string) : null;
  return net.isIP(e) !== 0 ? normalizeIp(e) : null;
}

function refResolve(trusted: readonly string[], peer: string, xff: string | undefined): string {
  if (!trusted.includes(peer)) return peer;
  if (xff === undefined) return peer;
  const entries = xff
    .split(',')
    .map(stripOws)
    .filter((e) => e !== '');
  let last = peer;
  for (let i = entries.length - 1; i >= 0; i--) {
    const ip = refEntry(entries[i] as string);
    if (ip === null) return last; // garbage: the hop that handed it over
    if (!trusted.includes(ip)) return ip; // first untrusted from the right
    last = ip;
  }
  return last; // all trusted: leftmost (or the peer when there were no entries)
}

const POOL = ['10.0.0.1', '10.0.0.2', '1.1.1.1', '2.2.2.2', '127.0.0.1', '::1', '2001:db8::1', '2001:db8::2', 'fe80::1'];

/** The spellings of a pool address a proxy might write into X-Forwarded-For. */
function spellingOf(ip: string) {
  const options = net.isIPv4(ip)
    ? [ip, `${ip}:1234`, `::ffff:${ip}`, `[::ffff:${ip}]:80`, `::FFFF:${ip}`]
    : [ip, `[${ip}]`, `[${ip}]:443`, ip.toUpperCase(), ip.replace('::', ':0::').replace(/^:0::/, '0::')];
  return fc.constantFrom(...options);
}

const GARBAGE = ['unknown', '1.2.3', '999.1.1.1', '[1.1.1.1]', '1.1.1.1:99999', 'a b', '::1:', '"1.1.1.1"', '_hidden', '[::1'];

const ws = fc.constantFrom('', ' ', '  ', '\t', ' \t');
const element = fc.tuple(
  ws,
  fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...POOL).chain(spellingOf) }, { weight: 1, arbitrary: fc.constantFrom(...GARBAGE, '') }),
  ws,
).map(([a, e, b]) => a + e + b);
const xffArb = fc.option(
  fc.array(element, { maxLength: 6 }).map((els) => els.join(',')),
  { nil: undefined },
);

/** A trusted-proxy config: a subset of the pool, each written in some config spelling. */
const trustedArb = fc.subarray(POOL).chain((subset) =>
  fc
    .tuple(
      fc.constant(subset),
      fc.tuple(
        ...subset.map((ip) =>
          fc.constantFrom(...(net.isIPv4(ip) ? [ip, `${ip}/32`, `::ffff:${ip}`, `::ffff:${ip}/128`] : [ip, `${ip}/128`, `[${ip}]`])),
        ),
      ),
    )
    .map(([ips, spelled]) => ({ ips, spelled: spelled as string[] })),
);

test('property: resolver agrees with the reference model', () => {
  fc.assert(
    fc.property(trustedArb, fc.constantFrom(...POOL), xffArb, ({ ips, spelled }, peer, xff) => {
      const r = createClientIpResolver({ trustedProxies: spelled });
      const got = r(peer, xff);
      assert.equal(got, refResolve(ips, peer, xff), `peer=${peer} xff=${JSON.stringify(xff)} trusted=${JSON.stringify(spelled)}`);
      // Always a normalized address, never garbage.
      assert.equal(normalizeIp(got), got);
      // An untrusted peer is never overridden.
      if (!ips.includes(peer)) assert.equal(got, peer);
    }),
    { numRuns: 5000 },
  );
});

test('property: the answer never comes from left of the first garbage element (from the right)', () => {
  fc.assert(
    fc.property(trustedArb, fc.constantFrom(...POOL), fc.array(element, { maxLength: 6 }), ({ spelled }, peer, els) => {
      const r = createClientIpResolver({ trustedProxies: spelled });
      const xff = els.join(',');
      const got = r(peer, xff);
      const entries = parseForwardedFor(xff);
      let firstGarbage = -1;
      for (let i = entries.length - 1; i >= 0; i--) {
        if (parseForwardedEntry(entries[i] as string) === null) {
          firstGarbage = i;
          break;
        }
      }
      const allowed = new Set([peer, ...entries.slice(firstGarbage + 1).map((e) => parseForwardedEntry(e))]);
      assert.ok(allowed.has(got), `${got} from ${JSON.stringify(xff)}`);
    }),
    { numRuns: 3000 },
  );
});
