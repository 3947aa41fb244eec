/**
 * The differential suite, generated corpus: fast-check builds arbitrary combinations of
 * path segments, dot segments, escapes, separators, parameters and case (paths), of
 * names, case, trailing dots, ports, escapes, userinfo and absolute-form (hosts), and of
 * identity and client-IP header spellings, and sends each through gatehouse to every
 * framework (lab.ts). The oracle is the same as for the listed corpus.
 *
 * Runs are bounded and the seed is fixed (printed on failure by fast-check, and here at
 * start): GATEHOUSE_DIFF_SEED=<n> explores another part of the space,
 * GATEHOUSE_DIFF_RUNS=<n> changes the number of runs, GATEHOUSE_DIFF_SHRINK=1 shrinks a
 * failure to a minimal case (slower).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { check, labKey, startLab, type Case, type Lab } from './lab.js';
import type { WireRequest } from './wire.js';

const SEED = Number(process.env.GATEHOUSE_DIFF_SEED ?? 20_261_111);
const RUNS = Number(process.env.GATEHOUSE_DIFF_RUNS ?? 0);
const SHRINK = process.env.GATEHOUSE_DIFF_SHRINK === '1';
const runs = (n: number): number => (RUNS > 0 ? RUNS : n);

/** Flips the case of letters where `mask` says so (cycled). */
function flipCase(s: string, mask: readonly boolean[]): string {
  if (mask.length === 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    out += mask[i % mask.length] === true ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

const SEGMENT = fc.constantFrom(
  'admin', 'private', 'internal', 'login', 'public', 'secret', 'x', '', '.', '..',
  '%2e', '%2E%2e', '.%2e', '%2e.', '%2e%2e', '%61dmin', 'adm%69n', '%41DMIN', '%6cogin', '%70rivate',
  '%252e', '%252f', '%252e%252e', '%2561dmin', '%25', '..;', '.;', ';', ';a=b', 'admin;x=1', '..;x',
  '%3b', '%3B..', '%20', '%C3%A0', '%C0%AE', '%EF%BC%A1dmin', 'admin.', 'admin..', '~', 'a-b_c', '%7e',
);
const SEPARATOR = fc.constantFrom('/', '/', '/', '//', '\\', '%2f', '%2F', '%5c', '%5C', '/./', '/../', '/.;/');
const LEAD = fc.constantFrom('/', '/', '//', '\\', '/./', '/%2e/', '/..;/');

export const pathArb = fc
  .record({
    lead: LEAD,
    first: SEGMENT,
    rest: fc.array(fc.tuple(SEPARATOR, SEGMENT), { maxLength: 5 }),
    trailing: fc.constantFrom('', '', '/', '/.', '/..', ';p'),
    mask: fc.array(fc.boolean(), { maxLength: 12 }),
  })
  .map(({ lead, first, rest, trailing, mask }) => {
    // Case flips apply to letters only; escapes keep meaning either way (hex is case-insensitive).
    const raw = lead + first + rest.map(([s, g]) => s + g).join('') + trailing;
    return flipCase(raw, mask);
  });

// ---------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------

const BASE_HOST = fc.constantFrom('files.test', 'files.test', 'vault.test', 'api.test', 'llm.test', 'unknown.test', '127.0.0.1', '[::1]', 'files');
const PORT = fc.constantFrom(null, null, '80', '8080', '65535', '0', '65536', '99999', '', 'abc', '080', '1:2');
const USERINFO = fc.constantFrom(null, null, null, 'user@', 'files.test@', 'vault.test@', 'a:b@');

function encodeOne(host: string, at: number): string {
  if (host.length === 0) return host;
  const i = at % host.length;
  return `${host.slice(0, i)}%${host.charCodeAt(i).toString(16).padStart(2, '0')}${host.slice(i + 1)}`;
}

const authorityArb = fc
  .record({
    base: BASE_HOST,
    dot: fc.boolean(),
    port: PORT,
    userinfo: USERINFO,
    encode: fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary: fc.nat(40), weight: 1 }),
    mask: fc.array(fc.boolean(), { maxLength: 10 }),
  })
  .map(({ base, dot, port, userinfo, encode, mask }) => {
    let h = flipCase(base, mask) + (dot && !base.startsWith('[') ? '.' : '');
    if (encode !== null) h = encodeOne(h, encode);
    return `${userinfo ?? ''}${h}${port === null ? '' : `:${port}`}`;
  });

const hostRequestArb = fc
  .record({
    form: fc.constantFrom('header', 'header', 'absolute', 'absolute+header', 'two-headers'),
    a: authorityArb,
    b: authorityArb,
    scheme: fc.constantFrom('http', 'HTTP', 'https'),
    path: fc.constantFrom('/hello', '/admin/x', '/private/x', '/v1/chat'),
  })
  .map(({ form, a, b, scheme, path }): WireRequest => {
    switch (form) {
      case 'absolute':
        return { method: 'GET', target: `${scheme}://${a}${path}`, headers: [] };
      case 'absolute+header':
        return { method: 'GET', target: `${scheme}://${a}${path}`, headers: [['Host', b]] };
      case 'two-headers':
        return { method: 'GET', target: path, headers: [['Host', a], ['Host', b]] };
      default:
        return { method: 'GET', target: path, headers: [['Host', a]] };
    }
  });

// ---------------------------------------------------------------------------------------
// Header spellings
// ---------------------------------------------------------------------------------------

const HEADER_WORDS = fc.constantFrom(
  ['X', 'Gatehouse', 'Subject'],
  ['X', 'Gatehouse', 'Identity', 'Type'],
  ['X', 'Gatehouse', 'Role'],
  ['X', 'Gatehouse', 'Domain'],
  ['X', 'Real', 'IP'],
  ['X', 'Forwarded', 'For'],
  ['True', 'Client', 'IP'],
  ['X', 'Client', 'IP'],
  ['X', 'Original', 'URL'],
  ['X', 'HTTP', 'Method', 'Override'],
  ['Forwarded'],
);

const headerNameArb = fc
  .record({ words: HEADER_WORDS, seps: fc.array(fc.constantFrom('-', '-', '_'), { minLength: 4, maxLength: 4 }), mask: fc.array(fc.boolean(), { maxLength: 8 }) })
  .map(({ words, seps, mask }) => flipCase(words.map((w, i) => (i === 0 ? w : `${seps[i - 1] ?? '-'}${w}`)).join(''), mask));

function headerRequestArb(token: string) {
  return fc
    .record({
      names: fc.array(headerNameArb, { minLength: 1, maxLength: 3 }),
      value: fc.constantFrom('root', '127.0.0.1', '/admin/secret', 'DELETE', 'for=127.0.0.1'),
      site: fc.constantFrom('files.test', 'api.test'),
      connection: fc.oneof({ arbitrary: fc.constant(null), weight: 2 }, { arbitrary: headerNameArb, weight: 1 }),
    })
    .map(({ names, value, site, connection }): WireRequest => {
      const headers: Array<[string, string]> = [['Host', site]];
      if (site === 'api.test') headers.push(['Authorization', `Bearer ${token}`]);
      for (const n of names) headers.push([n, value]);
      if (connection !== null) headers.push(['Connection', connection]);
      return { method: value === 'DELETE' ? 'POST' : 'GET', target: '/hello', headers: value === 'DELETE' ? [...headers, ['Content-Length', '0']] : headers };
    });
}

// ---------------------------------------------------------------------------------------

const key = await labKey();

describe(`differential suite: generated spellings (fast-check seed ${SEED})`, { concurrency: false }, () => {
  let lab: Lab;
  let n = 0;
  before(async () => {
    lab = await startLab({ key });
    console.log(`differential generated corpus: seed ${SEED}, frameworks ${lab.targets.map((t) => t.fw.name).join(', ')}`);
  });
  after(async () => {
    await lab?.close();
  });

  /** The report of the last failing run (the counterexample fast-check prints, or its shrunk form). */
  let lastFailure = '';
  async function property(cls: string, req: WireRequest): Promise<void> {
    const c: Case = { cls, name: 'generated', requests: [req] };
    const { report } = await check(lab, c, `g${n++}`);
    if (report !== '') {
      lastFailure = report;
      throw new Error(report);
    }
  }

  async function holds<T>(arb: fc.Arbitrary<T>, numRuns: number, send: (value: T) => Promise<void>): Promise<void> {
    lastFailure = '';
    const out = await fc.check(fc.asyncProperty(arb, send), { numRuns: runs(numRuns), seed: SEED, endOnFailure: !SHRINK });
    if (out.failed) assert.fail(`${fc.defaultReportMessage(out) ?? 'property failed'}\n\n${lastFailure}`);
  }

  it('paths: arbitrary segments, dot segments, escapes, separators, parameters and case', async () => {
    await holds(pathArb, 300, (path) => property('generated paths', { method: 'GET', target: path, headers: [['Host', 'files.test']] }));
  });

  it('paths with escaped_path: decode (a second gateway per framework)', async () => {
    const decode = await startLab({ key, extra: { http: { request: { escaped_path: 'decode' } } } });
    try {
      await holds(pathArb, 200, async (path) => {
        const { report } = await check(decode, { cls: 'generated paths (decode)', name: 'generated', requests: [{ method: 'GET', target: path, headers: [['Host', 'files.test']] }] }, `h${n++}`);
        if (report !== '') {
          lastFailure = report;
          throw new Error(report);
        }
      });
    } finally {
      await decode.close();
    }
  });

  it('hosts: arbitrary names, case, trailing dots, ports, escapes, userinfo, absolute-form and Host', async () => {
    await holds(hostRequestArb, 200, (req) => property('generated hosts', req));
  });

  it('headers: identity and client-IP header spellings, with and without a token, named in Connection', async () => {
    await holds(headerRequestArb(key.token), 150, (req) => property('generated headers', req));
  });
});
