/**
 * The listed corpus of hostile spellings, by class. Every case is checked by the oracle
 * (lab.ts `judge`): refused with a documented code, or read by each framework the way
 * gatehouse decided. `expect` adds what the one-reading design (docs/lifecycle.md) says
 * happens, so a gateway that refused everything would not pass either.
 *
 * Sites (lab.ts labConfig): files.test = admin (/admin, 127.0.0.1 only) + public (token
 * on /private*, one /login* per hour, policy: no /internal*, no DELETE); api.test (token
 * everywhere); llm.test (policy on body field `model`); vault.test (127.0.0.1 only).
 * Clients connect from 127.0.0.9 unless a case says otherwise.
 */
import { deflateSync, gzipSync } from 'node:zlib';
import type { Route } from './frameworks.js';
import { FORBIDDEN_MODEL, INSIDE, type Case, type Expect } from './lab.js';
import type { HeaderValue, WireRequest } from './wire.js';

type Headers = ReadonlyArray<readonly [string, HeaderValue]>;

const FILES: Headers = [['Host', 'files.test']];
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

export function get(target: string, headers: Headers = FILES, version?: string): WireRequest {
  return version === undefined ? { method: 'GET', target, headers } : { method: 'GET', target, headers, version };
}

function post(target: string, headers: Headers, body: Buffer | string): WireRequest {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return { method: 'POST', target, headers: [...headers, ['Content-Length', String(bytes.length)]], body: bytes };
}

function chunked(target: string, headers: Headers, body: Buffer, te = 'chunked'): WireRequest {
  const parts: Buffer[] = [];
  for (let i = 0; i < body.length; i += 1024) {
    const c = body.subarray(i, i + 1024);
    parts.push(b(`${c.length.toString(16)}\r\n`), c, b('\r\n'));
  }
  parts.push(b('0\r\n\r\n'));
  return { method: 'POST', target, headers: [...headers, ['Transfer-Encoding', te]], body: Buffer.concat(parts) };
}

const forward = (path?: string, route?: Route): Expect => ({ kind: 'forward', ...(path === undefined ? {} : { path }), ...(route === undefined ? {} : { route }) });
const refuse = (code: string | string[], close?: boolean): Expect => ({ kind: 'refuse', code, ...(close === undefined ? {} : { close }) });
const DROP: Expect = { kind: 'drop' };
const NONE: Expect = { kind: 'none' };
/** Percent-encoded `/`, `\`, `.` or double encoding: 400 ambiguous_path by default (and `Connection: close`). */
const AMBIGUOUS = refuse('ambiguous_path', true);
/**
 * The same, where the decoded reading of the path is the admin site: routing reads the
 * escapes as what they encode, so the admin site's IP filter drops 127.0.0.9 first.
 */
const AMBIGUOUS_OR_DROP: Expect = { kind: 'refuse', code: 'ambiguous_path', orDrop: true };
/** A path with no reading at all (invalid escape, invalid UTF-8, NUL). */
const UNREADABLE = refuse(['bad_request', 'ambiguous_path']);

function one(cls: string, name: string, req: WireRequest, expect?: Expect, extra: Partial<Case> = {}): Case {
  return { cls, name, requests: [req], ...(expect === undefined ? {} : { expect: [expect] }), ...extra };
}

// ---------------------------------------------------------------------------------------
// Paths (files.test)
// ---------------------------------------------------------------------------------------

const path = (name: string, target: string, expect?: Expect, extra?: Partial<Case>): Case => one('paths', name, get(target), expect, extra);

export const PATHS: Case[] = [
  path('control: /hello is public', '/hello', forward('/hello', 'public')),
  path('control: /admin/secret from 127.0.0.1 reaches the admin route', '/admin/secret', forward('/admin/secret', 'admin'), { from: INSIDE }),
  path('/admin/secret', '/admin/secret', DROP),
  path('/admin', '/admin', DROP),
  path('/admin/ (trailing slash)', '/admin/', DROP),
  path('case: /ADMIN/secret', '/ADMIN/secret', DROP),
  path('case: /Admin/Secret', '/Admin/Secret', DROP),
  path('dot segments: /admin/../secret is /secret', '/admin/../secret', forward('/secret', 'public')),
  path('dot segments: /public/../admin/secret', '/public/../admin/secret', DROP),
  path('dot segments: /./admin/secret', '/./admin/secret', DROP),
  path('dot segments: /public/./../admin/secret', '/public/./../admin/secret', DROP),
  path('dot segments above the root: /a/b/../../../../admin/x', '/a/b/../../../../admin/x', DROP),
  path('dot segments: /admin/. is /admin/', '/admin/.', DROP),
  path('dot segments: /admin/secret/..', '/admin/secret/..', DROP),
  path('dot segments: /admin/.. is /', '/admin/..', forward('/', 'public')),
  path('encoded slash: /admin/..%2fsecret', '/admin/..%2fsecret', AMBIGUOUS),
  path('encoded slash: /admin/..%2Fsecret', '/admin/..%2Fsecret', AMBIGUOUS),
  path('encoded slash: /admin%2fsecret', '/admin%2fsecret', AMBIGUOUS_OR_DROP),
  path('encoded slash: /ADMIN%2Fsecret', '/ADMIN%2Fsecret', AMBIGUOUS_OR_DROP),
  path('encoded slash: /public%2f..%2fadmin%2fsecret', '/public%2f..%2fadmin%2fsecret', AMBIGUOUS_OR_DROP),
  path('encoded slash: /%2fadmin/secret', '/%2fadmin/secret', AMBIGUOUS_OR_DROP),
  path('encoded dots: /admin/%2e%2e/secret', '/admin/%2e%2e/secret', AMBIGUOUS),
  path('encoded dots: /admin/%2E%2E/secret', '/admin/%2E%2E/secret', AMBIGUOUS),
  path('encoded dots: /public/%2e%2e/admin/secret', '/public/%2e%2e/admin/secret', AMBIGUOUS_OR_DROP),
  path('encoded dots: /public/.%2e/admin/secret', '/public/.%2e/admin/secret', AMBIGUOUS_OR_DROP),
  path('encoded dot: /%2e/admin/secret', '/%2e/admin/secret', AMBIGUOUS_OR_DROP),
  path('encoded dot in a name: /admin%2e/secret', '/admin%2e/secret', AMBIGUOUS),
  path('encoded backslash: /public/..%5cadmin%5csecret', '/public/..%5cadmin%5csecret', AMBIGUOUS_OR_DROP),
  path('encoded backslash: /admin%5Csecret', '/admin%5Csecret', AMBIGUOUS_OR_DROP),
  path('backslash: /public\\..\\admin\\secret', '/public\\..\\admin\\secret', DROP),
  path('backslash: /public/..\\admin/secret', '/public/..\\admin/secret', DROP),
  path('backslash: /admin\\secret', '/admin\\secret', DROP),
  path('backslash: /secret\\..\\hello is /hello', '/secret\\..\\hello', forward('/hello', 'public')),
  path('slashes: //admin/secret', '//admin/secret', DROP),
  path('slashes: /public//..//admin/secret', '/public//..//admin/secret', DROP),
  path('slashes: /a//b is /a/b', '/a//b', forward('/a/b', 'public')),
  path('params: /public;x=1/hello is kept', '/public;x=1/hello', forward('/public;x=1/hello', 'public')),
  path('params: /admin;x=1/secret', '/admin;x=1/secret', DROP),
  path('params: /admin;/secret', '/admin;/secret', DROP),
  path('params: /public/..;/admin/secret', '/public/..;/admin/secret', DROP),
  path('params: /public/..;x=1/admin/secret', '/public/..;x=1/admin/secret', DROP),
  path('params: /x/.;/admin/secret', '/x/.;/../admin/secret', DROP),
  path('dot segment only once %3B is decoded: /public/..%3Bx/admin/secret', '/public/..%3Bx/admin/secret', AMBIGUOUS_OR_DROP),
  path('dot segment only once %3B is decoded: /admin/..%3B/secret', '/admin/..%3B/secret', AMBIGUOUS_OR_DROP),
  path('dot segment only once %3b is decoded: /x/.%3b/hello', '/x/.%3b/hello', AMBIGUOUS),
  path('double encoding: /public/%252e%252e/admin/secret', '/public/%252e%252e/admin/secret', AMBIGUOUS_OR_DROP),
  path('double encoding: /admin%252fsecret', '/admin%252fsecret', AMBIGUOUS_OR_DROP),
  path('double encoding hiding dot segments: /admin/%252e%252e/public', '/admin/%252e%252e/public', AMBIGUOUS),
  path('double encoding hiding slashes: /admin%252f..%252fpublic', '/admin%252f..%252fpublic', AMBIGUOUS),
  path('double encoding of %: /a%2525b', '/a%2525b', AMBIGUOUS),
  path('double encoding: /public/%2561dmin', '/public/%2561dmin', AMBIGUOUS),
  path('double encoding spelled with decodable escapes: /public/%25%32%65%25%32%65/admin/secret', '/public/%25%32%65%25%32%65/admin/secret'),
  path('unreserved escape: /%61dmin/secret', '/%61dmin/secret', DROP),
  path('unreserved escape: /adm%69n/secret', '/adm%69n/secret', DROP),
  path('unreserved escape: /%41DMIN/secret', '/%41DMIN/secret', DROP),
  path('unreserved escapes decoded when forwarded: /h%65llo is /hello', '/h%65llo', forward('/hello', 'public')),
  path('kept escape: /admin%20/secret', '/admin%20/secret', forward('/admin%20/secret', 'public')),
  path('kept escape, lowercase hex uppercased: /a%3fb', '/a%3fb', forward('/a%3Fb', 'public')),
  path('encoded question mark then dots: /public%3f/../admin/secret', '/public%3f/../admin/secret', DROP),
  path('unicode: /%C3%A0dmin/secret', '/%C3%A0dmin/secret', forward()),
  path('unicode: fullwidth /%EF%BC%A1dmin/secret', '/%EF%BC%A1dmin/secret', forward()),
  path('unicode: dotless i /adm%C4%B1n/secret', '/adm%C4%B1n/secret'),
  path('unicode: long s /%C5%BFecret', '/%C5%BFecret'),
  path('overlong UTF-8: /%C0%AEadmin', '/%C0%AEadmin', UNREADABLE),
  path('overlong UTF-8 dots: /%c0%ae%c0%ae/admin/secret', '/%c0%ae%c0%ae/admin/secret', UNREADABLE),
  path('overlong UTF-8 slash: /public%c0%afadmin', '/public%c0%afadmin', UNREADABLE),
  path('IIS %u escape: /%u0061dmin/secret', '/%u0061dmin/secret', UNREADABLE),
  path('NUL: /admin%00/secret', '/admin%00/secret', UNREADABLE),
  path('invalid escape: /admin%zz', '/admin%zz', UNREADABLE),
  path('raw non-ASCII bytes: /\\xC3\\xA0dmin', '/\u00c3\u00a0dmin', refuse('bad_request')),
  path('raw tab in the target', '/admin\t/x', refuse('bad_request')),
  path('trailing dot: /admin./secret', '/admin./secret', forward('/admin./secret', 'public')),
  path('trailing dots: /admin../secret', '/admin../secret', forward('/admin../secret', 'public')),
  path('private: /PRIVATE/x', '/PRIVATE/x', refuse('missing_token')),
  path('private: /x/../private/x', '/x/../private/x', refuse('missing_token')),
  path('private: /private;a/x', '/private;a/x', refuse('missing_token')),
  path('private: /%70rivate/x', '/%70rivate/x', refuse('missing_token')),
  path('private: /Private%2fx', '/Private%2fx', refuse(['ambiguous_path', 'missing_token'])),
  path('internal (policy like): /internal/x', '/internal/x', refuse('policy_denied')),
  path('internal (policy like): /Internal/../internal/x', '/Internal/../internal/x', refuse('policy_denied')),
  path('internal (policy like): //internal/x', '//internal/x', refuse('policy_denied')),
  path('internal (policy like): /internal;a/x', '/internal;a/x', refuse('policy_denied')),
  path('internal (policy like): /x/..\\internal/x', '/x/..\\internal/x', refuse('policy_denied')),
  path('login class: /login', '/login', refuse('rate_limited')),
  path('login class: /LOGIN', '/LOGIN', refuse('rate_limited')),
  path('login class: /Login/../login', '/Login/../login', refuse('rate_limited')),
  path('login class: /%6cogin', '/%6cogin', refuse('rate_limited')),
  path('login class: /login;jsessionid=x', '/login;jsessionid=x', refuse('rate_limited')),
  path('login class: //login', '//login', refuse('rate_limited')),
  path('login class: /login/', '/login/', refuse('rate_limited')),
  path('query is not a path: /hello?x=/../admin/secret', '/hello?x=/../admin/secret', forward('/hello', 'public')),
  path('fragment: /hello#/../admin/secret', '/hello#/../admin/secret'),
  path('no leading slash: admin/secret', 'admin/secret', refuse('bad_request')),
  one('paths', 'asterisk-form: OPTIONS *', { method: 'OPTIONS', target: '*', headers: FILES }, refuse('bad_request')),
];

// ---------------------------------------------------------------------------------------
// Hosts (path /hello)
// ---------------------------------------------------------------------------------------

const host = (name: string, value: string, expect?: Expect): Case => one('hosts', name, get('/hello', [['Host', value]]), expect);
const absolute = (name: string, target: string, hostHeader: string | null, expect?: Expect): Case =>
  one('hosts', name, get(target, hostHeader === null ? [] : [['Host', hostHeader]]), expect);
const UNKNOWN_HOST: Expect = DROP;

export const HOSTS: Case[] = [
  host('control: files.test', 'files.test', forward('/hello', 'public')),
  host('case: FILES.TEST', 'FILES.TEST', forward('/hello')),
  host('trailing dot: files.test.', 'files.test.', forward('/hello')),
  host('case, trailing dot and port: Files.Test.:8080', 'Files.Test.:8080', forward('/hello')),
  host('port out of range: files.test:99999', 'files.test:99999', refuse('bad_request')),
  host('port zero: files.test:0', 'files.test:0', refuse('bad_request')),
  host('port not numeric: files.test:abc', 'files.test:abc', refuse('bad_request')),
  host('empty port: files.test:', 'files.test:'),
  host('two ports: files.test:80:80', 'files.test:80:80', refuse('bad_request')),
  host('percent-encoded name: files%2etest', 'files%2etest', refuse('bad_request')),
  host('percent-encoded NUL: files.test%00', 'files.test%00', refuse('bad_request')),
  host('locked host: vault.test', 'vault.test', DROP),
  host('locked host, case and dot: VAULT.TEST.', 'VAULT.TEST.', DROP),
  host('userinfo: user@vault.test', 'user@vault.test', refuse('bad_request')),
  host('userinfo: files.test@vault.test', 'files.test@vault.test', refuse('bad_request')),
  host('userinfo: vault.test@files.test', 'vault.test@files.test', refuse('bad_request')),
  host('list: files.test, vault.test', 'files.test, vault.test', refuse('bad_request')),
  host('sub-delims: files.test;vault.test', 'files.test;vault.test', refuse('bad_request')),
  host('path in Host: files.test/admin', 'files.test/admin', refuse('bad_request')),
  host('raw non-ASCII: f\\xC3\\xADles.test', 'f\u00c3\u00adles.test', refuse('bad_request')),
  host('IPv6 literal: [::1]', '[::1]', UNKNOWN_HOST),
  host('IPv6 literal with port: [::1]:8080', '[::1]:8080', UNKNOWN_HOST),
  host('IPv4-mapped IPv6 literal: [::ffff:127.0.0.1]', '[::ffff:127.0.0.1]', UNKNOWN_HOST),
  host('bare IPv6: ::1', '::1', refuse('bad_request')),
  host('IPv4: 127.0.0.1', '127.0.0.1', UNKNOWN_HOST),
  host('unknown host: unknown.test', 'unknown.test', UNKNOWN_HOST),
  host('punycode: xn--fles-9qa.test', 'xn--fles-9qa.test', UNKNOWN_HOST),
  host('empty labels: files..test', 'files..test'),
  absolute('absolute-form wins over Host: http://files.test/hello + Host vault.test', 'http://files.test/hello', 'vault.test', forward('/hello')),
  absolute('absolute-form wins over Host: http://vault.test/hello + Host files.test', 'http://vault.test/hello', 'files.test', DROP),
  absolute('absolute-form with port: http://files.test:80/hello + Host vault.test', 'http://files.test:80/hello', 'vault.test', forward('/hello')),
  absolute('absolute-form port wins: http://files.test:9090/hello + Host files.test:8080', 'http://files.test:9090/hello', 'files.test:8080', forward('/hello')),
  absolute('absolute-form case: HTTP://FILES.TEST/hello + Host vault.test', 'HTTP://FILES.TEST/hello', 'vault.test', forward('/hello')),
  absolute('absolute-form https: https://files.test/hello + Host vault.test', 'https://files.test/hello', 'vault.test'),
  absolute('absolute-form without path: http://files.test + Host vault.test', 'http://files.test', 'vault.test', forward('/')),
  absolute('absolute-form userinfo: http://user@vault.test/hello', 'http://user@vault.test/hello', 'files.test', refuse('bad_request')),
  absolute('absolute-form userinfo: http://files.test@vault.test/hello', 'http://files.test@vault.test/hello', 'files.test', refuse('bad_request')),
  absolute('absolute-form IPv6: http://[::1]/hello', 'http://[::1]/hello', 'files.test', UNKNOWN_HOST),
  absolute('absolute-form without Host header', 'http://files.test/hello', null, forward('/hello')),
  one('hosts', 'two Host headers', get('/hello', [['Host', 'files.test'], ['Host', 'vault.test']]), refuse('bad_request')),
  one('hosts', 'no Host header (HTTP/1.1)', get('/hello', []), refuse(['missing_host', 'bad_request'])),
  one('hosts', 'no Host header (HTTP/1.0)', get('/hello', [], 'HTTP/1.0'), refuse('missing_host')),
  one('hosts', 'X-Forwarded-Host from an untrusted client', get('/hello', [...FILES, ['X-Forwarded-Host', 'vault.test']]), forward('/hello')),
  one('hosts', 'Host with surrounding whitespace', get('/hello', [['Host', '  files.test  ']]), forward('/hello')),
];

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

const header = (name: string, headers: Headers, expect?: Expect, target = '/hello'): Case => one('headers', name, get(target, [...FILES, ...headers]), expect);

/** Cases that need the valid token (api.test, where every path needs one). */
export function apiHeaders(token: string): Case[] {
  const api = (name: string, headers: Headers, expect: Expect = forward('/hello')): Case =>
    one('headers', name, get('/hello', [['Host', 'api.test'], ['Authorization', `Bearer ${token}`], ...headers]), expect);
  return [
    api('control: a verified identity reaches the upstream', []),
    api('identity header spelled with underscores: X_Gatehouse_Subject', [['X_Gatehouse_Subject', 'root']]),
    api('identity header spelled with underscores: X_GATEHOUSE_IDENTITY_TYPE', [['X_GATEHOUSE_IDENTITY_TYPE', 'human']]),
    api('identity header spelled with underscores: X_Gatehouse_Role', [['X_Gatehouse_Role', 'admin']]),
    api('identity header from the client: X-Gatehouse-Subject', [['X-Gatehouse-Subject', 'root']]),
    api('identity headers from the client, two spellings', [['x-gatehouse-subject', 'root'], ['X-GATEHOUSE-DOMAIN', 'billing']]),
    api('Connection names an identity header', [['Connection', 'X-Gatehouse-Subject, X-Gatehouse-Identity-Type']]),
    api('Connection names an identity header and the client sends an underscore spelling', [['Connection', 'X-Gatehouse-Subject'], ['X_Gatehouse_Subject', 'root']]),
  ];
}

export const HEADERS: Case[] = [
  header('underscore identity header on a site without auth: X_Gatehouse_Subject', [['X_Gatehouse_Subject', 'admin']], forward('/hello')),
  header('identity header on a site without auth: X-Gatehouse-Subject', [['X-Gatehouse-Subject', 'admin']], forward('/hello')),
  header('underscore identity header on /private without a token', [['X_Gatehouse_Subject', 'admin']], refuse('missing_token'), '/private/x'),
  header('Connection: host', [['Connection', 'host']], forward('/hello')),
  header('Connection: close, Host', [['Connection', 'close, Host']], forward('/hello')),
  header('Connection: x-forwarded-for', [['Connection', 'x-forwarded-for'], ['X-Forwarded-For', '127.0.0.1']], forward('/hello')),
  header('Connection: x-real-ip', [['Connection', 'x-real-ip'], ['X-Real-IP', '127.0.0.1']], forward('/hello')),
  header('Connection: x-request-id', [['Connection', 'x-request-id']], forward('/hello')),
  header('Connection: x-forwarded-host', [['Connection', 'x-forwarded-host']], forward('/hello')),
  header('client IP: X-Real-IP', [['X-Real-IP', '127.0.0.1']], forward('/hello')),
  header('client IP: True-Client-IP, CF-Connecting-IP, X-Client-IP', [['True-Client-IP', '127.0.0.1'], ['CF-Connecting-IP', '127.0.0.1'], ['X-Client-IP', '127.0.0.1']], forward('/hello')),
  header('client IP: X-Cluster-Client-IP, Fastly-Client-IP', [['X-Cluster-Client-IP', '127.0.0.1'], ['Fastly-Client-IP', '127.0.0.1']], forward('/hello')),
  header('client IP: X-Original-Forwarded-For, Forwarded-For, X-Forwarded', [['X-Original-Forwarded-For', '127.0.0.1'], ['Forwarded-For', '127.0.0.1'], ['X-Forwarded', 'for=127.0.0.1']], forward('/hello')),
  header('client IP: Forwarded and X-Forwarded-For', [['Forwarded', 'for=127.0.0.1;host=vault.test'], ['X-Forwarded-For', '127.0.0.1']], forward('/hello')),
  header('client IP: underscore spellings X_Real_IP, X_Forwarded_For', [['X_Real_IP', '127.0.0.1'], ['X_Forwarded_For', '127.0.0.1']], forward('/hello')),
  header('client IP: X-Forwarded-Port, X-Forwarded-Server, X-Forwarded-Prefix', [['X-Forwarded-Port', '8443'], ['X-Forwarded-Server', 'vault.test'], ['X-Forwarded-Prefix', '/admin']], forward('/hello')),
  header('scheme: X-Forwarded-Ssl, X-Forwarded-Scheme, X-Url-Scheme', [['X-Forwarded-Ssl', 'on'], ['X-Forwarded-Scheme', 'https'], ['X-Url-Scheme', 'https'], ['X-Forwarded-Proto', 'https']], forward('/hello')),
  one('headers', 'method override: POST + X-HTTP-Method-Override: DELETE', post('/hello', [...FILES, ['X-HTTP-Method-Override', 'DELETE']], ''), forward('/hello')),
  one('headers', 'method override: POST + X-HTTP-Method: DELETE', post('/hello', [...FILES, ['X-HTTP-Method', 'DELETE']], ''), forward('/hello')),
  one('headers', 'method override: POST + X-Method-Override: DELETE', post('/hello', [...FILES, ['X-Method-Override', 'DELETE']], ''), forward('/hello')),
  one('headers', 'method: DELETE is refused by the policy (control)', { method: 'DELETE', target: '/hello', headers: FILES }, refuse('policy_denied')),
  header('rewrite: X-Original-URL: /admin/secret', [['X-Original-URL', '/admin/secret']], forward('/hello')),
  header('rewrite: X-Rewrite-URL: /internal/x', [['X-Rewrite-URL', '/internal/x']], forward('/hello')),
  header('rewrite: X-Original-Host, X-Host', [['X-Original-Host', 'vault.test'], ['X-Host', 'vault.test']], forward('/hello')),
  header('request id from the client', [['X-Request-Id', 'spoofed-id']], forward('/hello')),
  header('non-ASCII header bytes (UTF-8)', [['X-Probe', b('caf\u00c3\u00a9')]], forward('/hello')),
  header('non-ASCII header bytes (not UTF-8)', [['X-Probe', Buffer.from([0xff, 0xfe, 0x80, 0x41])], ['X-Probe-2', b('\u00e9t\u00e9')]], forward('/hello')),
  header('obs-fold continuation line', [['X-Probe', 'a\r\n b']], refuse('bad_request')),
  header('space before the colon', [['X-Probe ', 'x']], refuse('bad_request')),
  header('NUL in a header value', [['X-Probe', 'a\u0000b']], refuse('bad_request')),
  one('headers', 'Transfer-Encoding: gzip, chunked', chunked('/hello', FILES, b('{}'), 'gzip, chunked'), refuse('unsupported_transfer_encoding', true)),
  one('headers', 'Transfer-Encoding: chunked, gzip', chunked('/hello', FILES, b('{}'), 'chunked, gzip'), refuse(['bad_request', 'unsupported_transfer_encoding'], true)),
  one('headers', 'Transfer-Encoding: identity', chunked('/hello', FILES, b('{}'), 'identity'), refuse(['bad_request', 'unsupported_transfer_encoding'], true)),
  one('headers', 'Content-Length and Transfer-Encoding', { method: 'POST', target: '/hello', headers: [...FILES, ['Content-Length', '3'], ['Transfer-Encoding', 'chunked']], body: b('0\r\n\r\n') }, refuse('bad_request', true)),
  one(
    'headers',
    'Connection: content-length, content-type on a policy-read body',
    post('/v1/chat', [['Host', 'llm.test'], ['Content-Type', 'application/json'], ['Connection', 'content-length, content-type, content-encoding']], '{"model":"ok-1"}'),
    { kind: 'forward', path: '/v1/chat', model: 'ok-1' },
  ),
];

// ---------------------------------------------------------------------------------------
// Bodies (llm.test, policy on `model`)
// ---------------------------------------------------------------------------------------

const LLM: Headers = [['Host', 'llm.test']];
const JSON_CT: Headers = [...LLM, ['Content-Type', 'application/json']];
const body = (name: string, headers: Headers, data: Buffer | string, expect?: Expect): Case => one('bodies', name, post('/v1/chat', headers, data), expect);
const bom = (s: string): Buffer => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(s)]);
const utf16 = (s: string): Buffer => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(s, 'utf16le')]);
const INVALID = refuse('invalid_body');
const UNSUPPORTED = refuse('unsupported_media_type');
const F = FORBIDDEN_MODEL;

export const BODIES: Case[] = [
  body('control: {"model":"ok-1"}', JSON_CT, '{"model":"ok-1"}', { kind: 'forward', path: '/v1/chat', model: 'ok-1' }),
  body('control: the forbidden model is refused', JSON_CT, `{"model":"${F}"}`, refuse('policy_denied')),
  body('escaped value: forbidden\\u002dmodel', JSON_CT, '{"model":"forbidden\\u002dmodel"}', refuse('policy_denied')),
  body('duplicate keys: allowed then forbidden', JSON_CT, `{"model":"ok-1","model":"${F}"}`, INVALID),
  body('duplicate keys: forbidden then allowed', JSON_CT, `{"model":"${F}","model":"ok-1"}`, INVALID),
  body('case-variant duplicate keys: model then Model', JSON_CT, `{"model":"ok-1","Model":"${F}"}`, INVALID),
  body('case-variant duplicate keys: MODEL then model', JSON_CT, `{"MODEL":"${F}","model":"ok-1"}`, INVALID),
  // A Go or ASP.NET binder reads `Model` as `model`: refused, or evaluated as `model`.
  body('case-variant key alone: Model', JSON_CT, `{"Model":"${F}"}`, refuse(['invalid_body', 'policy_denied'])),
  body('duplicate keys after unescaping: model and mod\\u0065l', JSON_CT, `{"model":"ok-1","mod\\u0065l":"${F}"}`, INVALID),
  body('duplicate keys nested', JSON_CT, '{"a":{"x":1,"x":2},"model":"ok-1"}', INVALID),
  body('byte-order mark before the forbidden model', JSON_CT, bom(`{"model":"${F}"}`), INVALID),
  body('byte-order mark before an allowed model', JSON_CT, bom('{"model":"ok-1"}'), INVALID),
  body('UTF-16 with BOM as application/json', JSON_CT, utf16(`{"model":"${F}"}`), INVALID),
  body('UTF-16 with charset=utf-16', [...LLM, ['Content-Type', 'application/json; charset=utf-16']], utf16(`{"model":"${F}"}`), UNSUPPORTED),
  body('UTF-16LE without BOM, charset=utf-16le', [...LLM, ['Content-Type', 'application/json; charset=utf-16le']], Buffer.from(`{"model":"${F}"}`, 'utf16le'), UNSUPPORTED),
  body('charset=utf-8', [...LLM, ['Content-Type', 'application/json; charset=utf-8']], '{"model":"ok-1"}', { kind: 'forward', model: 'ok-1' }),
  body('charset=UTF-8 and type case: Application/JSON; charset=UTF-8', [...LLM, ['Content-Type', 'Application/JSON; charset=UTF-8']], `{"model":"${F}"}`, refuse(['policy_denied', 'unsupported_media_type'])),
  body('charset=utf-8 with the forbidden model', [...LLM, ['Content-Type', 'application/json; charset=utf-8']], `{"model":"${F}"}`, refuse('policy_denied')),
  body('form body', [...LLM, ['Content-Type', 'application/x-www-form-urlencoded']], `model=${F}`, UNSUPPORTED),
  body('JSON as text/plain', [...LLM, ['Content-Type', 'text/plain']], `{"model":"${F}"}`, UNSUPPORTED),
  body('JSON without Content-Type', LLM, `{"model":"${F}"}`, UNSUPPORTED),
  body('JSON as application/vnd.api+json', [...LLM, ['Content-Type', 'application/vnd.api+json']], `{"model":"${F}"}`, UNSUPPORTED),
  body('two Content-Type headers', [...LLM, ['Content-Type', 'text/plain'], ['Content-Type', 'application/json']], `{"model":"${F}"}`),
  body('gzip Content-Encoding', [...JSON_CT, ['Content-Encoding', 'gzip']], gzipSync(`{"model":"${F}"}`), UNSUPPORTED),
  body('deflate Content-Encoding', [...JSON_CT, ['Content-Encoding', 'deflate']], deflateSync(`{"model":"${F}"}`), UNSUPPORTED),
  body('identity Content-Encoding', [...JSON_CT, ['Content-Encoding', 'identity']], `{"model":"${F}"}`, UNSUPPORTED),
  body('model as an array', JSON_CT, `{"model":["${F}"]}`, INVALID),
  body('model as an object', JSON_CT, `{"model":{"name":"${F}"}}`, INVALID),
  body('top-level array', JSON_CT, `[{"model":"${F}"}]`, INVALID),
  body('two JSON values', JSON_CT, `{"model":"ok-1"}{"model":"${F}"}`, INVALID),
  body('trailing garbage', JSON_CT, '{"model":"ok-1"} x', INVALID),
  body('invalid UTF-8 in a string', JSON_CT, Buffer.concat([b('{"model":"ok-'), Buffer.from([0xff]), b('"}')]), INVALID),
  one('bodies', 'chunked body with the forbidden model', chunked('/v1/chat', JSON_CT, Buffer.from(`{"model":"${F}"}`)), refuse('policy_denied')),
  one('bodies', 'chunked body with an allowed model', chunked('/v1/chat', JSON_CT, Buffer.from('{"model":"ok-1"}')), { kind: 'forward', model: 'ok-1' }),
  body('body over policy.max_body_bytes', JSON_CT, `{"model":"ok-1","pad":"${'x'.repeat(5000)}"}`, refuse('body_too_large')),
];

// ---------------------------------------------------------------------------------------
// Connections: upgrades, pipelining, closing answers, chunked limits
// ---------------------------------------------------------------------------------------

const H2C: Headers = [...FILES, ['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']];

export const CONNECTIONS: Case[] = [
  { cls: 'connections', name: 'control: two pipelined requests are both served', requests: [get('/hello'), get('/hello')], expect: [forward('/hello'), forward('/hello')] },
  { cls: 'connections', name: 'Upgrade: h2c then a request on the same socket', requests: [get('/hello', H2C)], second: get('/admin/secret'), expect: [forward('/hello'), NONE], settle: true },
  { cls: 'connections', name: 'Upgrade: h2c pipelined with the next request', requests: [get('/hello', H2C), get('/admin/secret')], expect: [forward('/hello'), NONE], settle: true },
  // An upgrade request the site does not allow with a body is refused (the body would follow on a socket Node no longer parses).
  { cls: 'connections', name: 'Upgrade: h2c on a POST with a body', requests: [post('/hello', H2C, 'x=1')], second: get('/internal/x'), expect: [refuse('bad_request', true), NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind an IP-filter drop', requests: [get('/admin/secret'), get('/hello')], expect: [DROP, NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind an unknown-host drop', requests: [get('/hello', [['Host', 'unknown.test']]), get('/hello')], expect: [DROP, NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind Connection: close', requests: [get('/hello', [...FILES, ['Connection', 'close']]), get('/hello')], expect: [forward('/hello'), NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind HTTP/1.0 without keep-alive', requests: [get('/hello', FILES, 'HTTP/1.0'), get('/hello')], expect: [forward('/hello'), NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind a 400 (ambiguous path)', requests: [get('/admin/..%2fsecret'), get('/hello')], expect: [refuse('ambiguous_path', true), NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind a 400 (bad Host)', requests: [get('/hello', [['Host', 'files.test:99999']]), get('/hello')], expect: [refuse('bad_request', true), NONE], settle: true },
  {
    cls: 'connections',
    name: 'chunked body over max_body_bytes: 413 and close, the pipelined request is never served',
    requests: [chunked('/upload', FILES, Buffer.alloc(8192, 0x61)), get('/hello')],
    expect: [refuse('body_too_large', true), NONE],
    settle: true,
  },
  {
    cls: 'connections',
    name: 'Content-Length over max_body_bytes: 413 and close',
    requests: [{ method: 'POST', target: '/upload', headers: [...FILES, ['Content-Length', '8192']], body: Buffer.alloc(8192, 0x61) }, get('/hello')],
    expect: [refuse('body_too_large', true), NONE],
    settle: true,
  },
  { cls: 'connections', name: 'pipelined behind Transfer-Encoding: gzip, chunked', requests: [chunked('/hello', FILES, b('{}'), 'gzip, chunked'), get('/hello')], expect: [refuse('unsupported_transfer_encoding', true), NONE], settle: true },
  { cls: 'connections', name: 'pipelined behind a 401 (keep-alive goes on)', requests: [get('/private/x'), get('/hello')], expect: [refuse('missing_token'), forward('/hello')] },
];

export function corpus(token: string): Case[] {
  return [...PATHS, ...HOSTS, ...HEADERS, ...apiHeaders(token), ...BODIES, ...CONNECTIONS];
}
