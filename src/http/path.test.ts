import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalPath, compilePathPatterns, normalizePath, normalizePathSlow, parseTarget, PATH_AMBIGUOUS_SEGMENT, PATH_DOUBLE_ENCODING, PATH_ESCAPED_SEPARATOR, PATH_PARAMETERS, validatePathPattern } from './path.js';

// ---------------------------------------------------------------------------------------
// parseTarget
// ---------------------------------------------------------------------------------------

test('parseTarget: origin, absolute and asterisk forms', () => {
  const ok: [string, string, string, string | null][] = [
    ['/', '/', '', null],
    ['/a/b?x=1', '/a/b', 'x=1', null],
    ['/a?', '/a', '', null],
    ['/a?x?y', '/a', 'x?y', null],
    ['/a#frag', '/a', '', null],
    ['/a?x#frag?y', '/a', 'x', null],
    ['/a#f?x', '/a', '', null],
    ['//evil.example/x', '//evil.example/x', '', null], // a path, not an authority
    ['/%2e%2e/x', '/%2e%2e/x', '', null], // left encoded: normalizePath's job
    ['http://Host:8080/a?x', '/a', 'x', 'host:8080'],
    ['HTTP://EXAMPLE.com', '/', '', 'example.com'],
    ['https://example.com?q', '/', 'q', 'example.com'],
    ['https://example.com/', '/', '', 'example.com'],
    ['http://[::1]:80/a/b', '/a/b', '', '[::1]:80'],
    ['http://example.com#x', '/', '', 'example.com'],
    ['http://example.com/a?b=/c', '/a', 'b=/c', 'example.com'],
    ['*', '*', '', null],
  ];
  for (const [url, path, query, authority] of ok) {
    assert.deepEqual(parseTarget(url), { path, query, authority }, url);
  }
});

test('parseTarget: rejects everything else', () => {
  for (const url of [
    '',
    'a/b',
    '?x',
    '*?x',
    '**',
    ' /a',
    '/a b',
    '/a\tb',
    '/a\u0000b',
    '/a\u007fb',
    '/a\u00e9', // raw non-ASCII (Node gives latin1 bytes)
    '/a\r\nX-Injected: 1',
    'ftp://example.com/',
    'ws://example.com/',
    'http:/example.com/',
    'http://',
    'http:///a',
    'http://user@example.com/',
    'http://user:pw@example.com/',
    'http://exa mple.com/',
    'http://example.com:80x/',
    'http://example.com:123456/',
    'http://[::1/',
    'http://a]b/',
    'http://\\example.com/',
    'mailto:x',
  ]) {
    assert.equal(parseTarget(url), null, JSON.stringify(url));
  }
});

test('property: origin-form path and query come back exactly', () => {
  const visible = fc.constantFrom(...[...'abcXYZ019/._~-!$&\'()*+,;=:@%']);
  fc.assert(
    fc.property(
      fc.string({ unit: visible, maxLength: 30 }),
      fc.option(fc.string({ unit: fc.constantFrom(...[...'ab=&?/%']), maxLength: 10 }), { nil: undefined }),
      (rest, q) => {
        const path = '/' + rest;
        const url = q === undefined ? path : `${path}?${q}`;
        assert.deepEqual(parseTarget(url), { path, query: q ?? '', authority: null });
      },
    ),
    { numRuns: 2000 },
  );
});

// ---------------------------------------------------------------------------------------
// normalizePath
// ---------------------------------------------------------------------------------------

test('normalizePath: the table of tricky spellings', () => {
  const cases: [string, string | null][] = [
    ['/login', '/login'],
    ['/LOGIN', '/login'],
    ['/LoGiN', '/login'],
    ['/%6cogin', '/login'],
    ['/%6Cogin', '/login'],
    ['/%4cogin', '/login'],
    ['/%2e%2e/login', '/login'],
    ['/%2E%2E/login', '/login'],
    ['/x/..%2flogin', '/login'],
    ['/x/..%2Flogin', '/login'],
    ['/x/..%5clogin', '/login'],
    ['/x%2f..%2flogin', '/login'],
    ['//login', '/login'],
    ['///login//', '/login/'],
    ['/./login', '/login'],
    ['/login/.', '/login/'],
    ['/login/x/..', '/login/'],
    ['/../../login', '/login'],
    ['/login;a=b', '/login'],
    ['/login;', '/login'],
    ['/;x/login', '/login'],
    ['/x/..;y/login', '/login'],
    ['/login%3Bjsessionid=1', '/login'],
    ['\\login', '/login'],
    ['/\\login', '/login'],
    ['/api\\login', '/api/login'],
    ['/%254cogin', '/login'],
    ['/%25252e%25252e/login', '/login'], // triple-encoded dots
    ['/%252F%252Flogin', '/login'],
    ['/login/', '/login/'],
    ['/', '/'],
    ['', '/'],
    ['login', '/login'],
    ['/.well-known/x', '/.well-known/x'],
    ['/..x/y', '/..x/y'],
    ['/a.b/c', '/a.b/c'],
    ['/%C3%A9', '/é'],
    ['/%C3%89', '/é'], // É
    ['/É', '/é'],
    ['/ΑΣ', '/ασ'], // final sigma folded to σ
    ['/ς', '/σ'],
    ['/ſ', '/s'], // long s: uppercase S
    ['/K', '/k'], // Kelvin sign
    ['/%E1%BA%9E', '/ss'], // ẞ → ß → ss: folding is applied until it is stable
    ['/ß', '/ss'],
    ['/ﬀ', '/ff'],
    ['/%25ﬀ', null], // folding would make the literal % look like the escape %ff
    ['/a?b', '/a?b'],
    ['/a%3Fb', '/a?b'],
    ['/a%20b', '/a b'],
    ['/100%25', '/100%25'], // a literal percent stays encoded as %25
    ['/%25zz', '/%25zz'], // invalid escape produced by a later round stays literal
    ['/%2525zz', '/%25zz'],
    // invalid
    ['/%zz', null],
    ['/%4', null],
    ['/%', null],
    ['/a%', null],
    ['/%g0', null],
    ['/a%00b', null],
    ['/a%0ab', null],
    ['/a%1Fb', null],
    ['/a%7Fb', null],
    ['/a%2500b', null], // NUL after the second round
    ['/a\u0000b', null],
    ['/a\tb', null],
    ['/%C3', null], // truncated UTF-8
    ['/%C3%28', null],
    ['/%ED%A0%80', null], // UTF-16 surrogate encoded as UTF-8
    ['/%F8%88%80%80%80', null],
    ['/%252525252F', null], // still encoded after 4 rounds
    ['/\ud800', null], // lone surrogate (only possible from config strings)
  ];
  for (const [input, want] of cases) {
    assert.equal(normalizePath(input), want, `normalizePath(${JSON.stringify(input)})`);
    assert.equal(normalizePathSlow(input), want, `normalizePathSlow(${JSON.stringify(input)})`);
  }
});

test('normalizePath: already-normal paths are returned as the same string', () => {
  for (const p of ['/', '/login', '/api/v1/users/42', '/a-b_c~d.e/', '/.well-known/acme', '/x..y/']) {
    assert.equal(normalizePath(p), p);
  }
});

// Includes the case-folding troublemakers: É, Σ/ς (final sigma), ſ, İ, ı, K (Kelvin),
// ẞ/ß (fold twice), the ﬀ ligature (folds to hex letters) and ẚ.
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const PATH_CHARS = [...'/\\.;%25aAzZlLoOgGiInN09eEfF? =~\u00e9\u00c9\u03a3\u03c2\u017f\u0130\u0131\u212a\u1e9e\u00df\ufb00\u1e9a'];
const pathish = fc.oneof(
  fc.string({ unit: fc.constantFrom(...PATH_CHARS), maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(...'/.%2eEfF5cC'), maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => '/' + s),
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => '/' + encodeURIComponent(s)),
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => '/' + encodeURIComponent(encodeURIComponent(s))),
  fc.string({ unit: 'binary', maxLength: 12 }).map((s) => '/%25' + encodeURIComponent(s)),
);

test('property: normalizePath is idempotent', () => {
  fc.assert(
    fc.property(pathish, (p) => {
      const n = normalizePath(p);
      if (n !== null) assert.equal(normalizePath(n), n, JSON.stringify(p));
    }),
    { numRuns: 10000 },
  );
});

test('property: output invariants', () => {
  fc.assert(
    fc.property(pathish, (p) => {
      const n = normalizePath(p);
      if (n === null) return;
      assert.ok(n.startsWith('/'), n);
      assert.ok(!n.includes('//'), n);
      assert.ok(!n.includes('\\'), n);
      assert.ok(!n.includes(';'), n);
      assert.ok(!/[A-Z]/.test(n), n);
      assert.ok(!hasControl(n), n);
      assert.ok(!/%(?!25)/.test(n), `${n}: a % other than %25`);
      const segs = n.split('/').slice(1);
      assert.ok(!segs.includes('.') && !segs.includes('..'), n);
      assert.equal(n.toLowerCase(), n);
    }),
    { numRuns: 10000 },
  );
});

test('property: the fast path agrees with the full algorithm', () => {
  const ascii = fc.string({ unit: fc.constantFrom(...'/.;%\\aAzZ09-_~'), maxLength: 20 });
  fc.assert(
    fc.property(fc.oneof(ascii, ascii.map((s) => '/' + s), pathish), (p) => {
      assert.equal(normalizePath(p), normalizePathSlow(p), JSON.stringify(p));
    }),
    { numRuns: 10000 },
  );
});

test('property: an encodeURIComponent spelling normalizes like the raw characters', () => {
  // Strings without structure characters (`/` `\` `;` `.` `%`) or controls: encoding them
  // once (UTF-8 percent-escapes) must not change the result.
  const plain = fc.string({ unit: 'grapheme', maxLength: 10 }).filter((s) => s.length > 0 && !/[/\\;.%]/.test(s) && !hasControl(s));
  fc.assert(
    fc.property(plain, (s) => {
      const n = normalizePath('/' + encodeURIComponent(s));
      assert.equal(n, normalizePath('/' + s), s);
    }),
    { numRuns: 3000 },
  );
});

// ---------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------

test('validatePathPattern', () => {
  for (const ok of ['/', '/*', '/login', '/login*', '/api/*', '/Login*', '/%2A', '/a%20b']) {
    assert.equal(validatePathPattern(ok), null, ok);
  }
  for (const bad of ['', 'login', '*', '/a*b', '/*/x', '/a**', '/a?b', '/a#b', '/%zz', '/a%00', '/a\u0001']) {
    assert.equal(typeof validatePathPattern(bad), 'string', bad);
  }
});

test('compilePathPatterns: exact and prefix semantics', () => {
  const m = compilePathPatterns(['/login*', '/api/login*']);
  for (const p of ['/login', '/loginx', '/login/', '/login/a', '/api/login', '/api/login/x', '/api/loginz']) assert.equal(m(p), true, p);
  for (const p of ['/logout', '/logi', '/api/logi', '/api', '/api/', '/x/login', '/', '/apilogin']) assert.equal(m(p), false, p);

  const dir = compilePathPatterns(['/api/*']);
  assert.equal(dir('/api/x'), true);
  assert.equal(dir('/api/'), true);
  assert.equal(dir('/api'), true); // over-match on purpose: upstreams treat /api and /api/ alike
  assert.equal(dir('/apix'), false);

  const exact = compilePathPatterns(['/health', '/Docs/']);
  assert.equal(exact('/health'), true);
  assert.equal(exact('/health/'), true); // over-match on purpose
  assert.equal(exact('/healthz'), false);
  assert.equal(exact('/health/x'), false);
  assert.equal(exact('/docs/'), true);
  assert.equal(exact('/docs'), true);

  const root = compilePathPatterns(['/']);
  assert.equal(root('/'), true);
  assert.equal(root('/x'), false);
  const all = compilePathPatterns(['/x', '/*']);
  assert.equal(all('/anything'), true);
  const none = compilePathPatterns([]);
  assert.equal(none('/'), false);

  // Patterns are normalized like requests.
  const norm = compilePathPatterns(['/Login*', '/a/./b/../c', '/%2561dmin*', '/ΑΣ*']);
  assert.equal(norm('/login'), true);
  assert.equal(norm('/a/c'), true);
  assert.equal(norm('/admin/x'), true);
  assert.equal(norm(normalizePath('/ΑΣΒ') as string), true); // final-sigma folding
});

test('compilePathPatterns: invalid pattern throws TypeError naming it', () => {
  assert.throws(() => compilePathPatterns(['/ok', '/a*b']), (e: unknown) => e instanceof TypeError && e.message.includes('/a*b'));
  assert.throws(() => compilePathPatterns(['nope']), (e: unknown) => e instanceof TypeError && e.message.includes('nope'));
  assert.throws(() => compilePathPatterns(['/%zz*']), TypeError);
});

// --- the key property: no spelling escapes its class ------------------------------------

const SEG_CHARS = [...'abcdefghijklmnopqrstuvwxyz0123456789-_.~'];
const segment = fc.string({ unit: fc.constantFrom(...SEG_CHARS), minLength: 1, maxLength: 6 }).filter((s) => s !== '.' && s !== '..');

/** A canonical path: base plus an optional suffix (`x`, `/`, `/seg/seg`, `/seg/`). */
function canonicalUnder(bases: readonly string[]) {
  return fc
    .tuple(
      fc.constantFrom(...bases),
      fc.oneof(
        fc.constant(''),
        fc.constant('/'),
        fc.string({ unit: fc.constantFrom(...SEG_CHARS), minLength: 1, maxLength: 4 }),
        fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => '/' + s.join('/')),
        fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => '/' + s.join('/') + '/'),
      ),
    )
    .map(([b, s]) => b + s)
    .filter((p) => normalizePath(p) === p);
}

const hex2 = (c: string) => c.charCodeAt(0).toString(16).padStart(2, '0');

/** One character of a segment, spelled: as-is, case-flipped, %-encoded once/twice/thrice. */
const charSpelling = (c: string) =>
  fc.tuple(fc.nat(9), fc.boolean()).map(([how, upperHex]) => {
    const h = upperHex ? hex2(c).toUpperCase() : hex2(c);
    if (how <= 3) return c;
    if (how <= 5) return c.toUpperCase();
    if (how === 6) return '%' + h;
    if (how === 7) return '%25' + h;
    if (how === 8) return '%2525' + h;
    return '%' + hex2(c.toUpperCase()); // encoded uppercase letter
  });

/** A spelling of a single `/` separator (possibly with junk that resolves away). */
const SEPARATOR_SPELLINGS = ['/', '/', '/', '//', '\\', '%2F', '%2f', '%5C', '%5c', '%252F', '%255c', '/./', '/x/../', '/%2e/', '/Z/%2e%2e/', '\\.\\', '/q%2f..%2f', '/;p=1/', '/././/'];

function spell(canonical: string) {
  const segs = canonical.split('/').slice(1); // canonical starts with '/'
  return fc
    .tuple(
      fc.tuple(...segs.map((s) => fc.tuple(...[...s].map(charSpelling)).map((cs) => cs.join('')))),
      fc.array(fc.constantFrom(...SEPARATOR_SPELLINGS), { minLength: segs.length, maxLength: segs.length }),
      fc.array(fc.option(fc.constantFrom(';a=b', ';jsessionid=ABC', ';', '%3Bx', '%253Bx'), { nil: '', freq: 3 }), {
        minLength: segs.length,
        maxLength: segs.length,
      }),
      fc.constantFrom('', '', '/..', '/.', '/%2e%2e', '/..;x'),
    )
    .map(([spelledSegs, seps, params, lead]) => {
      let out = lead;
      for (let i = 0; i < segs.length; i++) out += (seps[i] as string) + (spelledSegs[i] as string) + (params[i] as string);
      return out;
    });
}

test('property: every spelling of a /login or /api/login path is in the login class', () => {
  const isLogin = compilePathPatterns(['/login*', '/api/login*']);
  fc.assert(
    fc.property(
      canonicalUnder(['/login', '/api/login']).chain((c) => fc.tuple(fc.constant(c), spell(c))),
      ([canonical, spelled]) => {
        const n = normalizePath(spelled);
        assert.equal(n, canonical, `${JSON.stringify(spelled)} → ${JSON.stringify(n)}`);
        assert.equal(isLogin(n as string), true, spelled);
        // The same request, as Node hands it over (origin-form with a query). A target not
        // starting with `/` (e.g. `\\login`, `%2Flogin`) is refused outright: also safe.
        const t = parseTarget(`${spelled}?next=%2F`);
        if (spelled.startsWith('/')) {
          assert.ok(t, spelled);
          assert.equal(isLogin(normalizePath(t.path) as string), true, spelled);
        } else {
          assert.equal(t, null, spelled);
        }
      },
    ),
    { numRuns: 5000 },
  );
});

test('property: spellings of unrelated paths stay out of the login class', () => {
  const isLogin = compilePathPatterns(['/login*', '/api/login*']);
  const unrelated = fc.constantFrom('/logout', '/logi', '/log/in', '/api/logi', '/api', '/api/', '/apilogin', '/x/login', '/api/x/login', '/', '/lo/gin', '/api/log');
  fc.assert(
    fc.property(
      unrelated.chain((c) => fc.tuple(fc.constant(c), spell(c))),
      ([canonical, spelled]) => {
        const n = normalizePath(spelled);
        assert.equal(n, canonical, `${JSON.stringify(spelled)} → ${JSON.stringify(n)}`);
        assert.equal(isLogin(n as string), false, spelled);
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: a normalized path is matched by itself as a pattern', () => {
  fc.assert(
    fc.property(pathish, (p) => {
      const n = normalizePath(p);
      if (n === null || n.includes('*') || n.includes('?') || n.includes('#')) return;
      assert.equal(compilePathPatterns([n])(n), true, n);
      assert.equal(compilePathPatterns([n + '*'])(n), true, n);
      // The raw spelling as a prefix pattern matches its own normal form too.
      const raw = p + '*';
      if (validatePathPattern(raw) === null) assert.equal(compilePathPatterns([raw])(n), true, p);
    }),
    { numRuns: 3000 },
  );
});

// ---------------------------------------------------------------------------------------
// canonicalPath (what is forwarded)
// ---------------------------------------------------------------------------------------

test('canonicalPath: dot segments resolved, slashes merged, unreserved escapes decoded, others uppercased', () => {
  const cases: Array<[string, string, number]> = [
    ['/', '/', 0],
    ['/a/b', '/a/b', 0],
    ['/Admin/Secret', '/Admin/Secret', 0],
    ['/admin/../secret', '/secret', 0],
    ['/admin/./x/', '/admin/x/', 0],
    ['/../../x', '/x', 0],
    ['/a/..', '/', 0],
    ['/a/b/..', '/a/', 0],
    ['//admin//x', '/admin/x', 0],
    ['/admin\\..\\secret', '/secret', 0],
    ['/%61dmin/%7euser', '/admin/~user', 0],
    ['/caf%c3%a9', '/caf%C3%A9', 0],
    ['/a%3bb', '/a%3Bb', 0],
    ['/a;jsessionid=1/b', '/a;jsessionid=1/b', PATH_PARAMETERS],
    ['/admin/..;/secret', '/secret', PATH_PARAMETERS],
    ['/admin/.;x/y', '/admin/y', PATH_PARAMETERS],
    ['/admin/..%2fsecret', '/admin/..%2Fsecret', PATH_ESCAPED_SEPARATOR],
    ['/admin/%2e%2e/secret', '/admin/%2E%2E/secret', PATH_ESCAPED_SEPARATOR],
    ['/a%5cb', '/a%5Cb', PATH_ESCAPED_SEPARATOR],
    ['/a%252fb', '/a%252fb', PATH_ESCAPED_SEPARATOR | PATH_DOUBLE_ENCODING],
    ['/a%25zz', '/a%25zz', 0],
    ['/a/%3b/..', '/a/', 0],
    ['/admin/..%3bx/y', '/admin/..%3Bx/y', PATH_AMBIGUOUS_SEGMENT],
    ['/admin/.%3B/y', '/admin/.%3B/y', PATH_AMBIGUOUS_SEGMENT],
    ['/admin/..x%3b/y', '/admin/..x%3B/y', 0],
  ];
  for (const [raw, path, flags] of cases) {
    const c = canonicalPath(raw);
    assert.equal(c.path, path, raw);
    assert.equal(c.flags, flags, raw);
  }
  assert.equal(canonicalPath('/a%zz').path, null);
  assert.equal(canonicalPath('/a%4').path, null);
});

test('canonicalPath with decode: escaped separators and dots are read as what they encode', () => {
  const cases: Array<[string, string]> = [
    ['/admin/..%2fsecret', '/secret'],
    ['/admin/%2e%2e/secret', '/secret'],
    ['/admin%2Fx', '/admin/x'],
    ['/a%5cb', '/a/b'],
    ['/a%2Ejs', '/a.js'],
    ['/a%252fb', '/a%252fb'],
  ];
  for (const [raw, path] of cases) assert.equal(canonicalPath(raw, true).path, path, raw);
});

/** Path pieces that upstreams read differently; `%25` (double encoding) is left out: it is always refused or kept. */
const piece = fc.constantFrom('a', 'B', 'admin', 'x.y', '.', '..', '', ';p=1', '..;', '%2e', '%2E%2e', '%2f', '%2F', '%5c', '\\', '%41', '%c3%a9', '%3b', '%20', '~', '-_');
const rawPath = fc.array(fc.array(piece, { maxLength: 3 }).map((p) => p.join('')), { maxLength: 8 }).map((segs) => '/' + segs.join('/'));

/** Each way an upstream may read a forwarded path's segments: decode or not, cut `;params` before or after decoding, or not at all. */
const readings: Array<(seg: string) => string> = [
  (seg) => seg,
  (seg) => decodeURIComponentLoose(seg),
  (seg) => decodeURIComponentLoose(seg.split(';')[0] as string),
  (seg) => decodeURIComponentLoose(seg).split(';')[0] as string,
];

function decodeURIComponentLoose(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

test('property: a forwarded path has one segment structure under every reading (no reading finds a dot segment in it)', () => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const c = canonicalPath(raw, true);
      if (c.path === null || (c.flags & PATH_AMBIGUOUS_SEGMENT) !== 0) return;
      for (const seg of c.path.split('/').slice(1)) {
        for (const read of readings) {
          const name = read(seg);
          assert.ok(name !== '.' && name !== '..', `${raw} -> ${c.path}: segment ${seg} reads as ${name}`);
        }
      }
      // Matching is on the forwarded path; re-canonicalizing it changes nothing.
      assert.equal(normalizePath(canonicalPath(c.path, true).path as string), normalizePath(c.path), raw);
      if ((c.flags & PATH_ESCAPED_SEPARATOR) === 0) assert.equal(canonicalPath(raw, false).path, c.path, raw);
    }),
    { numRuns: 3000 },
  );
});

test('property: the canonical path is canonical (idempotent; no dot segment, empty segment, backslash or escaped separator)', () => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const c = canonicalPath(raw, true);
      if (c.path === null) return;
      const again = canonicalPath(c.path, true);
      assert.equal(again.path, c.path, raw);
      assert.equal(again.flags & PATH_ESCAPED_SEPARATOR, 0, raw);
      assert.doesNotMatch(c.path, /\/\/|\\|%2[fFeE]|%5[cC]/, raw);
      for (const seg of c.path.split('/').slice(1, -1)) {
        const name = seg.split(';')[0];
        assert.ok(name !== '' && name !== '.' && name !== '..', `${raw} -> ${c.path}`);
      }
    }),
    { numRuns: 2000 },
  );
});
