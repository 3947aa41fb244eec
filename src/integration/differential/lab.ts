/**
 * The differential lab: one gatehouse per upstream framework, all with the same config,
 * a raw-socket client, and the oracle that compares what gatehouse decided on (its
 * answer and its request log line) with what the framework read (its ledger).
 *
 * The rule checked for every request: EITHER gatehouse refused it (a documented code, or
 * a zero-byte close) and no framework saw it, OR the framework's reading is the one
 * gatehouse decided on — same route class, its path is the forwarded path, the Host it
 * believes is the routed host, identity and client-IP headers are only gatehouse's, the
 * method it dispatches is the one gatehouse saw, and the body fields its parser found
 * are the ones the policy evaluated.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ERROR_CODES } from '../../errors/codes.js';
import { normalizePath } from '../../http/path.js';
import { startGateway, type TestGateway } from '../../testing/harness.js';
import { keyDir, makeKey, nowS, sign, type TestKey } from '../../testing/tokens.js';
import {
  nginxBinary,
  pythonBinary,
  requireOrSkip,
  ROUTES,
  startExpress,
  startNginx,
  startPython,
  type Framework,
  type Reading,
  type Route,
} from './frameworks.js';
import { exchange, sentAuthority, sentQuery, serialize, showBytes, type WireRequest, type WireResult } from './wire.js';

/** The client outside the admin allowlist; 127.0.0.1 is the one inside it. */
export const OUTSIDE = '127.0.0.9';
export const INSIDE = '127.0.0.1';
/** The body value the llm site's policy forbids. A framework that reads it on an admitted request read another body than the policy. */
export const FORBIDDEN_MODEL = 'forbidden-model';

export const IDENTITY_HEADERS = ['x-gatehouse-subject', 'x-gatehouse-identity-type', 'x-gatehouse-role', 'x-gatehouse-domain', 'x-gatehouse-agent'] as const;
/** Client-IP headers: whatever an upstream reads from them must be the client gatehouse resolved. */
export const CLIENT_IP_HEADERS = [
  'x-real-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'fastly-client-ip',
  'x-original-forwarded-for',
  'forwarded-for',
  'x-forwarded',
] as const;
/** Headers gatehouse removes from every client request (docs/lifecycle.md, one reading). */
export const REMOVED_HEADERS = [
  'x-forwarded-port',
  'x-forwarded-server',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-forwarded-scheme',
  'x-url-scheme',
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-host',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
] as const;

const PUBLIC_POLICY = `// The public site: anything but /internal, and no DELETE.
@id("public-any")
permit (principal, action, resource);

@id("public-no-internal")
forbid (principal, action, resource)
when { context.path like "/internal*" };

@id("public-no-delete")
forbid (principal, action == Action::"DELETE", resource);
`;

const LLM_POLICY = `// The llm site: any request, but never the forbidden model.
@id("llm-any")
permit (principal, action, resource);

@id("llm-no-forbidden-model")
forbid (principal, action, resource)
when { context has body && context.body has model && context.body.model == "${FORBIDDEN_MODEL}" };
`;

export interface LabFiles {
  readonly keyFile: string;
  readonly kid: string;
  readonly publicPolicy: string;
  readonly llmPolicy: string;
}

/**
 * The gatehouse config under test, identical for every framework:
 * - files.test: `admin` (/admin, only 127.0.0.1) and `public` (the rest: token needed on
 *   /private*, one request per hour on /login*, Cedar policy forbidding /internal* and DELETE);
 * - api.test: `api`, token needed everywhere (identity headers go upstream);
 * - llm.test: `llm`, Cedar policy on the body field `model`;
 * - vault.test: `vault`, only 127.0.0.1 (a locked host, for Host confusion).
 */
export function labConfig(upstreamUrl: string, files: LabFiles, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const upstream = { urls: [upstreamUrl] };
  return {
    listen: [{ address: '127.0.0.1:0' }],
    admin: { enabled: false },
    log: { level: 'info' },
    auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: files.kid, file: files.keyFile }] }] },
    identities: { unknown_identity: 'allow', default_agent_rpm: 1_000_000 },
    sites: [
      { id: 'admin', hosts: ['files.test'], path_prefix: '/admin', upstream, ip_filter: { allow: ['127.0.0.1/32'] } },
      {
        id: 'public',
        hosts: ['files.test'],
        upstream,
        max_body_bytes: '4KiB',
        auth: { paths: ['/private*'] },
        rate_limits: [{ id: 'login', limit: 1, window: '1h', paths: ['/login*'] }],
        policy: { files: [files.publicPolicy] },
      },
      { id: 'api', hosts: ['api.test'], upstream, auth: {} },
      { id: 'llm', hosts: ['llm.test'], upstream, max_body_bytes: '16KiB', policy: { files: [files.llmPolicy], body_fields: ['model'], max_body_bytes: '4KiB' } },
      { id: 'vault', hosts: ['vault.test'], upstream, ip_filter: { allow: ['127.0.0.1/32'] } },
    ],
    ...extra,
  };
}

export interface Target {
  readonly fw: Framework;
  readonly gw: TestGateway;
  /** Ledger entries already claimed by a case. */
  cursor: number;
}

export interface Lab {
  readonly targets: readonly Target[];
  /** A valid bearer token (subject agent-1, type agent). */
  readonly token: string;
  /** The key and policy files the config names (for tests that change a site's blocks). */
  readonly files: LabFiles;
  close(): Promise<void>;
}

export type FrameworkName = 'express' | 'python' | 'nginx';

/** The issuer key of the lab's `auth` block, and a valid token (agent-1) good for an hour. */
export async function labKey(): Promise<{ key: TestKey; token: string }> {
  const key = makeKey(keyDir(), 'diff-k1', 'ES256');
  return { key, token: await sign(key, { sub: 'agent-1', type: 'agent', exp: nowS() + 3600 }) };
}

export interface LabOptions {
  readonly frameworks?: readonly FrameworkName[];
  /** Top-level config keys added to (or replacing) the lab config's. */
  readonly extra?: Record<string, unknown>;
  /** Per-site keys merged into the lab's sites, by site id (a function gets the lab's files). */
  readonly sites?: Readonly<Record<string, Record<string, unknown>>> | ((files: LabFiles) => Readonly<Record<string, Record<string, unknown>>>);
  /** More sites, in front of the same upstream. */
  readonly addSites?: ReadonlyArray<Record<string, unknown>>;
  readonly key?: { key: TestKey; token: string };
}

/** The lab config with a test's additions: top-level keys, and keys merged into named sites. */
export function labConfigWith(upstreamUrl: string, files: LabFiles, opts: LabOptions): Record<string, unknown> {
  const cfg = labConfig(upstreamUrl, files, opts.extra);
  const sites = cfg.sites as Array<Record<string, unknown>>;
  const changes = typeof opts.sites === 'function' ? opts.sites(files) : (opts.sites ?? {});
  cfg.sites = [...sites.map((s) => ({ ...s, ...(changes[s.id as string] ?? {}) })), ...(opts.addSites ?? []).map((s) => ({ upstream: { urls: [upstreamUrl] }, ...s }))];
  return cfg;
}

export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const wanted = opts.frameworks ?? ['express', 'python', 'nginx'];
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-diff-'));
  const { key, token } = opts.key ?? (await labKey());
  const files: LabFiles = { keyFile: key.file, kid: key.kid, publicPolicy: join(dir, 'public.cedar'), llmPolicy: join(dir, 'llm.cedar') };
  writeFileSync(files.publicPolicy, PUBLIC_POLICY);
  writeFileSync(files.llmPolicy, LLM_POLICY);
  const frameworks: Framework[] = [];
  const targets: Target[] = [];
  const close = async () => {
    // gw.close waits for in-flight exchanges on an unref'd timer: keep the loop alive meanwhile,
    // so a gateway whose in-flight count is stuck costs its grace period, not the test run.
    const keepAlive = setInterval(() => undefined, 500);
    try {
      for (const t of targets) await t.gw.close();
      for (const f of frameworks) await f.close();
    } finally {
      clearInterval(keepAlive);
    }
  };
  try {
    for (const name of wanted) {
      if (name === 'express') frameworks.push(await startExpress());
      if (name === 'python') {
        const py = pythonBinary();
        if (requireOrSkip('python3', py !== null, 'Debian package python3').ok) frameworks.push(await startPython(py as string));
      }
      if (name === 'nginx') {
        const ng = nginxBinary();
        if (requireOrSkip('nginx', ng !== null, 'Debian package nginx; .ci/run installs it').ok) frameworks.push(await startNginx(ng as string));
      }
    }
    for (const fw of frameworks) targets.push({ fw, gw: await startGateway(labConfigWith(fw.url, files, opts)), cursor: 0 });
    // The one admitted /login request of the hour: after it, no spelling of /login may reach a login route.
    await Promise.all(targets.map((t) => warmUp(t)));
  } catch (err) {
    await close();
    throw err;
  }
  return { targets, token, files, close };
}

/** The controls that prove the frameworks route as described (else every "never reached" check is vacuous). */
async function warmUp(t: Target): Promise<void> {
  for (const [from, target, route] of [
    [OUTSIDE, '/login', 'login'],
    [INSIDE, '/admin/warm-up', 'admin'],
    [OUTSIDE, '/hello', 'public'],
  ] as const) {
    const before = t.fw.ledger.length;
    const wire = await exchange(t.gw.port, serialize({ method: 'GET', target, headers: [['Host', 'files.test']] }, 'warm-up'), { localAddress: from, responses: 1, idleMs: 15_000 });
    await until(() => {
      t.fw.sync();
      return t.fw.ledger.length > before;
    }, 3000);
    const seen = t.fw.ledger.slice(before).map((r) => r.route);
    if (wire.responses[0]?.status !== 200 || !seen.includes(route)) {
      throw new Error(`${t.fw.name}: warm-up ${target} from ${from} should reach route ${route}; got ${wire.responses[0]?.status} and routes ${seen.join(',')}\n${wire.bytes.toString('latin1')}`);
    }
  }
  t.cursor = t.fw.ledger.length;
}

export async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

export type Expect =
  /** Admitted by gatehouse (optionally: forwarded as `path`; the framework routed to `route`; its parser read `model`). */
  | { readonly kind: 'forward'; readonly path?: string; readonly route?: Route; readonly model?: unknown }
  /** Refused by gatehouse with this code, or one of these (any status the registry gives it). */
  | { readonly kind: 'refuse'; readonly code: string | readonly string[]; readonly close?: boolean; readonly orDrop?: boolean }
  /** The connection closed with zero bytes (IP filter, unknown host). */
  | { readonly kind: 'drop' }
  /** Never answered and never forwarded (pipelined behind a closing exchange). */
  | { readonly kind: 'none' };

export interface Case {
  /** Differential class (paths, hosts, headers, bodies, connections, generated…). */
  readonly cls: string;
  readonly name: string;
  /** Sent back to back in one write (pipelined when more than one). */
  readonly requests: readonly WireRequest[];
  /** Sent on the same socket after the first response (a request after an upgrade's answer). */
  readonly second?: WireRequest;
  /** Source address (default OUTSIDE). */
  readonly from?: string;
  /** What the one-reading design says happens, per request (second last). */
  readonly expect?: ReadonlyArray<Expect | undefined>;
  /** Wait a little after the exchange for requests that must never reach the upstream. */
  readonly settle?: boolean;
  /** How long to wait on a connection that stays open without answering everything. */
  readonly idleMs?: number;
}

export type LogLine = Record<string, unknown> & { req_id?: string; msg?: string };

export interface Outcome {
  readonly target: Target;
  readonly c: Case;
  readonly tag: string;
  readonly sent: Buffer;
  readonly sentSecond: Buffer | null;
  readonly wire: WireResult;
  /** Request log lines written during the case. */
  readonly logs: LogLine[];
  /** Framework readings that arrived during the case. */
  readonly readings: Reading[];
}

const requestLines = (gw: TestGateway): LogLine[] => gw.logs.filter((l) => l.msg === 'request') as LogLine[];

export async function runCase(t: Target, c: Case, tag: string): Promise<Outcome> {
  const logStart = t.gw.logs.length;
  const reqs = c.second === undefined ? c.requests : [...c.requests, c.second];
  const sent = Buffer.concat(c.requests.map((r, i) => serialize(r, `${tag}.${i}`)));
  const sentSecond = c.second === undefined ? null : serialize(c.second, `${tag}.${c.requests.length}`);
  const wire = await exchange(t.gw.port, sent, {
    localAddress: c.from ?? OUTSIDE,
    responses: reqs.length,
    idleMs: c.idleMs ?? 2500,
    // An answer that must close the connection: read on until it does.
    waitClose: (c.expect ?? []).some((e) => e !== undefined && e.kind === 'refuse' && e.close === true),
    ...(sentSecond === null ? {} : { second: sentSecond }),
  });
  // Each answer's log line (written when the exchange ends, maybe just after the answer).
  const ids = wire.responses.map((r) => r.headers['x-request-id']).filter((x): x is string => x !== undefined);
  await until(() => ids.every((id) => t.gw.logs.some((l) => l.req_id === id && l.msg === 'request')), 2000);
  if (c.settle === true) await new Promise((r) => setTimeout(r, 300));
  // Every exchange gatehouse admitted and the framework answered 200 must be in its ledger.
  const admitted = () => (t.gw.logs.slice(logStart) as LogLine[]).filter((l) => l.msg === 'request' && l.decision === 'allowed' && l.status === 200);
  await until(() => {
    t.fw.sync();
    return admitted().every((l) => t.fw.ledger.some((r) => r.request_id === l.req_id));
  }, 2000);
  t.fw.sync();
  const readings = t.fw.ledger.slice(t.cursor);
  t.cursor = t.fw.ledger.length;
  return { target: t, c, tag, sent, sentSecond, wire, logs: (t.gw.logs.slice(logStart) as LogLine[]).filter((l) => l.msg === 'request'), readings };
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

export interface Violation {
  /** DIFF: the upstream read something other than what gatehouse decided on. SPEC: not what the one-reading design says. */
  readonly kind: 'DIFF' | 'SPEC';
  readonly what: string;
}

/** Case folding as gatehouse's matcher does it (normalizePath). */
function fold(s: string): string {
  const once = (x: string) => x.toUpperCase().toLowerCase().replaceAll('\u03c2', '\u03c3');
  return once(once(s));
}

const utf8 = (latin1: string): string => Buffer.from(latin1, 'latin1').toString('utf8');

/**
 * A framework's decoded path read literally, up to what gatehouse's matching form leaves
 * out by design: case (folded) and `;` parameters (cut; a segment that is only
 * parameters, `;x`, is no segment, as the matching form drops it).
 */
function literalView(path: string): string {
  const segs = path.split('/');
  const out: string[] = [];
  let trailing = false;
  segs.forEach((seg, k) => {
    const i = seg.indexOf(';');
    if (i === 0) {
      if (k === segs.length - 1) trailing = true;
      return;
    }
    out.push(i < 0 ? seg : seg.slice(0, i));
  });
  let view = out.join('/');
  if (trailing && !view.endsWith('/')) view += '/';
  return fold(view === '' ? '/' : view);
}

/** Which guarded route class of files.test a normalized path falls in, as gatehouse's controls match it. */
export function coveredBy(route: Route, norm: string): boolean {
  switch (route) {
    case 'admin':
      return norm === '/admin' || norm.startsWith('/admin/');
    case 'private':
    case 'internal':
    case 'login':
      return norm.startsWith(`/${route}`);
    default:
      return true;
  }
}

function tagIndex(r: Reading, tag: string): number | null {
  const m = new RegExp(`[?&]c=${tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)`).exec(r.raw_target);
  return m === null ? null : Number(m[1]);
}

function errorCode(body: Buffer): string | null {
  try {
    const j = JSON.parse(body.toString()) as { error?: { code?: string } };
    return typeof j.error?.code === 'string' ? j.error.code : null;
  } catch {
    return null;
  }
}

/** Compares one framework reading with the log line of the exchange gatehouse admitted. */
function compareReading(r: Reading, l: LogLine, req: WireRequest | undefined, tag: string, idx: number | null): Violation[] {
  const v: Violation[] = [];
  const diff = (what: string) => v.push({ kind: 'DIFF', what });
  const spec = (what: string) => v.push({ kind: 'SPEC', what });
  const path = String(l.path);
  const host = String(l.host);
  const norm = normalizePath(path);
  // Route: a guarded route is reached only through gatehouse's control for it.
  if (norm === null) diff(`gatehouse admitted a path it cannot normalize: ${path}`);
  else if (host === 'files.test' && r.route !== 'none' && r.route !== 'public') {
    if (!coveredBy(r.route, norm)) diff(`framework routed to /${r.route} but gatehouse decided on ${norm} (site ${String(l.site)}), where the ${r.route} control does not apply`);
    if (r.route === 'admin' && l.site !== 'admin') diff(`framework routed to /admin but gatehouse routed to site ${String(l.site)}`);
    if (r.route === 'private' && l.subject === undefined) diff('framework routed to /private without a verified identity');
  }
  // The forwarded target is the decided path with the query unchanged.
  if (req !== undefined && idx !== null) {
    const q = sentQuery(req, `${tag}.${idx}`);
    const expected = q === '' ? path : `${path}?${q}`;
    if (r.raw_target !== expected) diff(`framework received target ${JSON.stringify(r.raw_target)}, gatehouse decided on (and logged) ${JSON.stringify(expected)}`);
  }
  // The framework's decoded path, read literally, is gatehouse's reading of that path.
  if (norm !== null && r.route !== 'none') {
    const theirs = literalView(utf8(r.path));
    const ours = fold(norm.replaceAll('%25', '%'));
    if (theirs !== ours) diff(`framework routed on path ${JSON.stringify(utf8(r.path))} (read: ${JSON.stringify(theirs)}), gatehouse decided on ${JSON.stringify(norm)} (read: ${JSON.stringify(ours)})`);
  }
  // Host: the one routed on, spelled as routed; the port only if the client gave one.
  if (r.host !== host) diff(`framework believes host ${JSON.stringify(r.host)}, gatehouse routed on ${JSON.stringify(host)}`);
  const auth = req === undefined ? null : sentAuthority(req);
  const digits = auth === null ? null : (/^(?:\[[^\]]*\]|[^:]*):(\d+)$/.exec(auth)?.[1] ?? null);
  // The port as a number (`080` is port 80).
  const port = digits === null ? null : String(Number(digits));
  const hostHeader = port === null ? host : `${host}:${port}`;
  if (r.host_header !== hostHeader && r.host_header.toLowerCase().replace(/:\d*$/, '') !== host) diff(`framework got Host ${JSON.stringify(r.host_header)}, gatehouse routed on ${JSON.stringify(host)}`);
  else if (r.host_header !== hostHeader) spec(`Host sent upstream is ${JSON.stringify(r.host_header)}, expected the generated ${JSON.stringify(hostHeader)}`);
  const xfh = r.headers['x-forwarded-host'];
  if (xfh !== undefined && xfh.toLowerCase().replace(/:\d*$/, '').replace(/\.$/, '') !== host) diff(`framework got X-Forwarded-Host ${JSON.stringify(xfh)}, gatehouse routed on ${JSON.stringify(host)}`);
  else if (xfh !== hostHeader) spec(`X-Forwarded-Host is ${JSON.stringify(xfh)}, expected the canonical authority ${JSON.stringify(hostHeader)}`);
  // Identity: only gatehouse's.
  const expectedIdentity: Record<string, unknown> = {
    'x-gatehouse-subject': l.subject,
    'x-gatehouse-identity-type': l.identity_type,
    'x-gatehouse-role': undefined,
    'x-gatehouse-domain': l.domain,
    'x-gatehouse-agent': l.agent,
  };
  for (const h of IDENTITY_HEADERS) {
    const seen = r.headers[h];
    const want = expectedIdentity[h];
    if (seen !== (want === undefined ? undefined : String(want))) diff(`framework reads ${h} = ${JSON.stringify(seen)}, gatehouse verified ${JSON.stringify(want)}`);
  }
  // Client IP: only the one gatehouse resolved.
  const client = String(l.client_ip);
  for (const h of CLIENT_IP_HEADERS) {
    const seen = r.headers[h];
    if (seen !== undefined && seen !== client) diff(`framework reads ${h} = ${JSON.stringify(seen)}, gatehouse resolved the client ${client}`);
  }
  const xff = r.headers['x-forwarded-for'];
  if (xff !== client) diff(`framework reads X-Forwarded-For ${JSON.stringify(xff)}, gatehouse resolved the client ${client}`);
  const fwd = r.headers.forwarded;
  if (fwd !== undefined) diff(`framework reads Forwarded ${JSON.stringify(fwd)} from an untrusted client`);
  // The scheme: the clients here speak plain HTTP to gatehouse.
  const proto = r.headers['x-forwarded-proto'];
  if (proto !== 'http') diff(`framework reads X-Forwarded-Proto ${JSON.stringify(proto)}; the client spoke http to gatehouse`);
  if (r.ip !== null && r.ip !== client) diff(`framework's client address is ${r.ip}, gatehouse resolved ${client}`);
  for (const h of REMOVED_HEADERS) if (r.headers[h] !== undefined) spec(`${h} reached the upstream (${JSON.stringify(r.headers[h])})`);
  if (r.headers['x-real-ip'] !== client) spec(`X-Real-IP should be set to the client ${client}; the upstream got ${JSON.stringify(r.headers['x-real-ip'])}`);
  // Method: the one gatehouse's controls saw.
  if (r.effective_method !== l.method) diff(`framework dispatches ${r.effective_method}, gatehouse decided on ${String(l.method)}`);
  // Body: the fields the policy evaluated (an admitted request never carried the forbidden model).
  if (r.body !== null && r.body.model === FORBIDDEN_MODEL) diff(`framework's body parser read model=${FORBIDDEN_MODEL}, which the policy forbids: it evaluated another reading of the body`);
  // Header bytes: as received.
  if (req !== undefined) {
    for (const [name, value] of req.headers) {
      const lower = name.toLowerCase();
      if (!lower.startsWith('x-probe')) continue;
      const want = (typeof value === 'string' ? Buffer.from(value, 'latin1') : value).toString('latin1').trim();
      const seen = r.headers[lower];
      if (seen === undefined) spec(`${name} did not reach the upstream`);
      else if (seen !== want) diff(`framework read ${name} as bytes ${showBytes(Buffer.from(seen, 'latin1'))}, the client sent ${showBytes(Buffer.from(want, 'latin1'))}`);
    }
  }
  return v;
}

/** Every violation of one case on one framework. */
export function judge(o: Outcome): Violation[] {
  const v: Violation[] = [];
  const { c, tag, wire, target } = o;
  const reqs = c.second === undefined ? c.requests : [...c.requests, c.second];
  const all = requestLines(target.gw);
  const byId = new Map<string, LogLine>();
  for (const l of all) if (typeof l.req_id === 'string') byId.set(l.req_id, l);
  // Every reading: an exchange gatehouse admitted, read the way gatehouse read it.
  for (const r of o.readings) {
    const idx = tagIndex(r, tag);
    const l = byId.get(r.request_id);
    const which = idx === null ? `a request (${JSON.stringify(r.raw_target)})` : `request #${idx}`;
    if (l === undefined) {
      v.push({ kind: 'DIFF', what: `${which} reached the framework (route ${r.route}) without any gatehouse decision (request id ${JSON.stringify(r.request_id)} has no log line)` });
      continue;
    }
    if (l.decision !== 'allowed') {
      v.push({ kind: 'DIFF', what: `${which} reached the framework although gatehouse refused it (${String(l.code)})` });
      continue;
    }
    // nginx refused it itself (its own 400 before any location): it read nothing to compare.
    if (r.body_error !== null && r.body_error.startsWith('nginx ')) continue;
    for (const x of compareReading(r, l, idx === null ? undefined : reqs[idx], tag, idx)) v.push({ ...x, what: `${which}: ${x.what}` });
  }
  // Every gatehouse answer: a documented code.
  wire.responses.forEach((res, i) => {
    const id = res.headers['x-request-id'];
    const l = id === undefined ? undefined : byId.get(id);
    if (l !== undefined && l.decision === 'refused') {
      const code = errorCode(res.body);
      const known = code === null ? undefined : (ERROR_CODES as Record<string, { status: number }>)[code];
      if (known === undefined || known.status !== res.status) v.push({ kind: 'SPEC', what: `answer #${i}: ${res.status} with code ${JSON.stringify(code)} is not a documented code/status` });
    }
  });
  // Header bytes on the way back (Express echoes X-Probe as X-Echo-Probe): unchanged.
  wire.responses.forEach((res, i) => {
    const echo = res.headers['x-echo-probe'];
    const sent = reqs[i]?.headers.find(([n]) => n.toLowerCase() === 'x-probe')?.[1];
    if (echo === undefined || sent === undefined) return;
    const want = (typeof sent === 'string' ? Buffer.from(sent, 'latin1') : sent).toString('latin1').trim();
    if (echo !== want) v.push({ kind: 'SPEC', what: `answer #${i}: the upstream's header bytes ${showBytes(Buffer.from(want, 'latin1'))} reached the client as ${showBytes(Buffer.from(echo, 'latin1'))}` });
  });
  // What the design says.
  (c.expect ?? []).forEach((e, i) => {
    if (e === undefined) return;
    const res = wire.responses[i];
    const l = res?.headers['x-request-id'] === undefined ? undefined : byId.get(res.headers['x-request-id']);
    const tagged = o.readings.filter((r) => tagIndex(r, tag) === i);
    switch (e.kind) {
      case 'forward': {
        if (res === undefined || l === undefined || l.decision !== 'allowed') {
          const got = res === undefined ? 'no answer' : l === undefined ? `${res.status} without a gatehouse log line` : `${res.status} ${errorCode(res.body) ?? ''}`;
          v.push({ kind: 'SPEC', what: `request #${i} should be admitted; got ${got}` });
          break;
        }
        if (e.path !== undefined && l.path !== e.path) v.push({ kind: 'SPEC', what: `request #${i} should be forwarded as ${e.path}; gatehouse forwarded ${String(l.path)}` });
        const r = tagged.find((x) => x.request_id === l.req_id);
        if (e.route !== undefined && r !== undefined && r.route !== e.route) v.push({ kind: 'SPEC', what: `request #${i} should reach route ${e.route}; the framework routed ${r.route}` });
        if (e.model !== undefined && r !== undefined && r.body !== null && r.body.model !== e.model) v.push({ kind: 'SPEC', what: `request #${i}: the framework should read model ${JSON.stringify(e.model)}; it read ${JSON.stringify(r.body.model)}` });
        break;
      }
      case 'refuse': {
        const code = res === undefined ? null : errorCode(res.body);
        const codes: readonly string[] = typeof e.code === 'string' ? [e.code] : e.code;
        // A path whose decoded reading is a site the client may not reach: the drop comes first.
        if (e.orDrop === true && i === 0 && wire.bytes.length === 0 && wire.closed) break;
        if (code === null || !codes.includes(code)) v.push({ kind: 'SPEC', what: `request #${i} should be refused with ${codes.join(' or ')}; got ${res === undefined ? (wire.bytes.length === 0 ? 'a zero-byte close' : 'no answer') : `${res.status} ${code ?? ''}`}` });
        else if (e.close === true && !(/close/i.test(res?.headers.connection ?? '') && wire.closed)) v.push({ kind: 'SPEC', what: `request #${i}: the ${code} answer should say Connection: close and close` });
        break;
      }
      case 'drop':
        if (wire.bytes.length !== 0 || !wire.closed) v.push({ kind: 'SPEC', what: `request #${i} should be dropped (zero-byte close); got ${wire.responses[0]?.status ?? 'bytes'} ${wire.responses[0] === undefined ? '' : (errorCode(wire.responses[0].body) ?? '')}` });
        break;
      case 'none':
        if (res !== undefined) v.push({ kind: 'SPEC', what: `request #${i} should never be processed; it was answered ${res.status} ${errorCode(res.body) ?? ''}` });
        if (tagged.length > 0) v.push({ kind: 'DIFF', what: `request #${i} should never be processed; it reached the framework` });
        break;
    }
  });
  return v;
}

/** The failure report: the exact bytes sent, what gatehouse decided and what the framework read. */
export function explain(o: Outcome, violations: readonly Violation[]): string {
  const lines = [`[${o.target.fw.name}] ${o.c.cls}: ${o.c.name}  (tag ${o.tag})`];
  for (const x of violations) lines.push(`  ${x.kind} ${x.what}`);
  lines.push(`  sent from ${o.c.from ?? OUTSIDE}:`, indent(showBytes(o.sent)));
  if (o.sentSecond !== null) lines.push('  then, after the first answer:', indent(showBytes(o.sentSecond)));
  lines.push(`  gatehouse answered (${o.wire.closed ? 'closed' : 'open'}; ${o.wire.bytes.length} bytes): ${o.wire.responses.map((r) => `${r.status} ${errorCode(r.body) ?? ''}`.trim()).join(' | ') || '-'}`);
  for (const l of o.logs) {
    lines.push(`  gatehouse decided: ${JSON.stringify({ req_id: l.req_id, site: l.site, method: l.method, host: l.host, path: l.path, status: l.status, decision: l.decision, code: l.code, subject: l.subject, client_ip: l.client_ip })}`);
  }
  for (const r of o.readings) {
    const h: Record<string, string> = {};
    for (const [k, val] of Object.entries(r.headers)) if (k.startsWith('x-') || k === 'forwarded' || k === 'host') h[k] = val;
    lines.push(`  ${r.fw} read: ${JSON.stringify({ route: r.route, raw_target: r.raw_target, path: utf8(r.path), host: r.host, host_header: r.host_header, method: r.method, effective_method: r.effective_method, request_id: r.request_id, ip: r.ip, body: r.body, body_error: r.body_error, headers: h })}`);
  }
  if (o.readings.length === 0) lines.push(`  ${o.target.fw.name} read: nothing`);
  return lines.join('\n');
}

function indent(s: string): string {
  return s
    .split('\n')
    .filter((x) => x !== '')
    .map((x) => `      ${x}`)
    .join('\n');
}

/** Runs one case on every target at once; returns the failure report ('' when none). */
export async function check(lab: Lab, c: Case, tag: string, kinds: ReadonlyArray<Violation['kind']> = ['DIFF', 'SPEC']): Promise<{ report: string; violations: Array<{ fw: string; v: Violation }> }> {
  const outcomes = await Promise.all(lab.targets.map((t) => runCase(t, c, tag)));
  const parts: string[] = [];
  const violations: Array<{ fw: string; v: Violation }> = [];
  for (const o of outcomes) {
    const v = judge(o).filter((x) => kinds.includes(x.kind));
    for (const x of v) violations.push({ fw: o.target.fw.name, v: x });
    if (v.length > 0) parts.push(explain(o, v));
  }
  return { report: parts.join('\n\n'), violations };
}

export { ROUTES };
