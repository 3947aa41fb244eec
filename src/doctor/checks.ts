/**
 * `gatehouse doctor`: a deployment checked against both seeds' checklists (docs/deploy.md).
 * Each check looks at the config and the files it names; when the gateway is running
 * (its admin listener answers) the live answers — /readyz, /metrics, a TLS handshake on
 * each HTTPS listener — are checked too. A check never changes anything.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { loadAuditKeys, openAuditStore } from '../audit/service.js';
import { verifyStore } from '../audit/sources.js';
import { readStreamState } from '../audit/stream-state.js';
import type { Config } from '../config/schema.js';
import { checkSecretFile, urlHasInlinePassword, withSecretReader } from '../config/secrets.js';
import { fileRefs, secretReaderFor } from '../config/validate-process.js';
import { openIdentityStores } from '../identity/services.js';
import { parseCidr } from '../net/ip.js';
import { CA_FILES, caPaths } from '../pki/ca.js';
import { isLoopbackHost, isWildcardHost, parseListenAddress } from '../server/address.js';
import { currentIdentity, procIds } from '../server/privileges.js';
import { compileHeaderPolicy, DEFAULT_SECURITY_HEADERS } from '../stages/headers/index.js';
import { stateDir } from '../stores/postgres-client.js';
import { storeHost, unencryptedStores } from '../stores/store-tls.js';

export type Status = 'PASS' | 'WARN' | 'FAIL' | 'SKIP';

export interface CheckResult {
  readonly id: string;
  readonly status: Status;
  readonly message: string;
  /** What to do about a WARN or FAIL. */
  readonly fix?: string;
}

export interface DoctorOptions {
  /** The running gateway's pid: its ids and environment are read from /proc. */
  readonly pid?: number;
  /** Admin listener base URL of the running gateway (default: from admin.listen). */
  readonly admin?: string;
  /** Environment to check for secrets when no pid is given (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly now?: number;
  /** Config problems from validation (the config may be schema-valid only). */
  readonly problems?: ReadonlyArray<{ path: string; message: string; severity: 'error' | 'warning' }>;
}

interface Ctx {
  readonly config: Readonly<Config>;
  readonly dir: string;
  readonly opts: DoctorOptions;
  readonly now: number;
  /** The live gateway, when its admin listener answered. */
  readonly live: Live | null;
  readonly adminUrl: string | null;
}

interface Live {
  readonly ready: { status: number; reason: string | null };
  readonly metrics: Map<string, Array<{ labels: Record<string, string>; value: number }>>;
}

const pass = (id: string, message: string): CheckResult => ({ id, status: 'PASS', message });
const warn = (id: string, message: string, fix: string): CheckResult => ({ id, status: 'WARN', message, fix });
const fail = (id: string, message: string, fix: string): CheckResult => ({ id, status: 'FAIL', message, fix });
const skip = (id: string, message: string): CheckResult => ({ id, status: 'SKIP', message });

/** Parses the Prometheus text format (no exemplars, no timestamps needed). */
export function parseMetrics(text: string): Live['metrics'] {
  const out: Live['metrics'] = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1');
    const list = out.get(m[1] as string) ?? [];
    list.push({ labels, value: Number(m[3]) });
    out.set(m[1] as string, list);
  }
  return out;
}

function fetchText(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const opts = { timeout: 3000, ...(url.startsWith('https:') ? { ca, rejectUnauthorized: ca !== undefined } : {}) };
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
  });
}

/** host:port a client on this machine can reach for a listen address (wildcards → loopback). */
function reachable(address: string): { host: string; port: number } | null {
  const a = parseListenAddress(address);
  if (!a || a.port === 0) return null;
  const host = isWildcardHost(a.host) ? (a.host === '::' ? '::1' : '127.0.0.1') : a.host;
  return { host, port: a.port };
}

function adminBase(config: Config, given: string | undefined): string | null {
  if (given !== undefined) return given.replace(/\/$/, '');
  if (!config.admin.enabled) return null;
  const r = reachable(config.admin.listen);
  if (!r) return null;
  const host = r.host.includes(':') ? `[${r.host}]` : r.host;
  return `${config.admin.tls ? 'https' : 'http'}://${host}:${r.port}`;
}

function caRoot(config: Config, dir: string): string | undefined {
  if (!config.ca) return undefined;
  try {
    return readFileSync(caPaths(resolve(dir, config.ca.dir)).rootCert, 'utf8');
  } catch {
    return undefined;
  }
}

async function probeLive(config: Config, dir: string, base: string | null): Promise<Live | null> {
  if (base === null) return null;
  const ca = caRoot(config, dir);
  try {
    const ready = await fetchText(`${base}/readyz`, ca);
    let reason: string | null = null;
    try {
      reason = (JSON.parse(ready.body) as { reason?: string }).reason ?? null;
    } catch {
      reason = null;
    }
    const metrics = await fetchText(`${base}/metrics`, ca);
    return { ready: { status: ready.status, reason }, metrics: parseMetrics(metrics.body) };
  } catch {
    return null;
  }
}

function metric(live: Live | null, name: string): Array<{ labels: Record<string, string>; value: number }> {
  return live?.metrics.get(name) ?? [];
}

// ---- the checks ------------------------------------------------------------------------

function checkConfig(c: Ctx): CheckResult {
  const problems = c.opts.problems ?? [];
  const errors = problems.filter((p) => p.severity === 'error');
  const warnings = problems.filter((p) => p.severity === 'warning');
  if (errors.length > 0) return fail('config', `${errors.length} error(s): ${errors.map((p) => `${p.path}: ${p.message}`).join('; ')}`, 'run gatehouse check --config FILE and fix every error (run refuses this file)');
  if (warnings.length > 0) return warn('config', `valid, ${warnings.length} warning(s): ${warnings.map((p) => `${p.path}: ${p.message}`).join('; ')}`, 'review the warnings of gatehouse check');
  return pass('config', `valid (${c.config.sites.length} site(s))`);
}

function checkPrivileges(c: Ctx): CheckResult {
  const id = 'privileges';
  if (c.opts.pid !== undefined) {
    const ids = procIds(c.opts.pid);
    if (!ids) return fail(id, `cannot read /proc/${c.opts.pid}/status`, 'give the pid of the running gateway (and run doctor as root or as its user)');
    if (ids.uid.includes(0) || ids.gid.includes(0)) return fail(id, `process ${c.opts.pid} runs with root ids (uid ${ids.uid.join('/')}, gid ${ids.gid.join('/')})`, 'set process.user (gatehouse drops to it after binding), or run it as an unprivileged user with CAP_NET_BIND_SERVICE');
    return pass(id, `process ${c.opts.pid} runs as uid ${ids.uid[0]} gid ${ids.gid[0]} (real, effective, saved), supplementary groups [${ids.groups.join(', ')}]`);
  }
  const p = c.config.process;
  if (p.serve_as_root) return fail(id, 'process.serve_as_root: true keeps serving as root', 'remove serve_as_root and set process.user (e.g. gatehouse), or run as a non-root user with CAP_NET_BIND_SERVICE');
  if (p.user !== undefined) return pass(id, `drops to ${String(p.user)}${p.group !== undefined ? `:${String(p.group)}` : ''} after binding its listeners (supplementary groups cleared)`);
  const me = currentIdentity().uid;
  if (me !== 0) return pass(id, `no process.user; this environment runs as uid ${me}, not root (started as root, run would refuse)`);
  return warn(id, 'no process.user: started as root, gatehouse refuses to run', 'run it as an unprivileged user (systemd User=, container USER 65532) or set process.user');
}

const SECRET_PATH = /(^|\.)(password_file|token_file|key_file|checkpoint_key_file)$|^audit\.keys\[\d+\]\.file$/;

function checkSecretFiles(c: Ctx): CheckResult {
  const id = 'secret_files';
  const refs = fileRefs(c.config).filter((r) => SECRET_PATH.test(r.path));
  if (refs.length === 0) return pass(id, 'no secret files configured');
  const reader = secretReaderFor(c.config);
  const bad: string[] = [];
  const modes = new Set<string>();
  for (const r of refs) {
    const file = resolve(c.dir, r.file);
    const problem = withSecretReader(reader, () => checkSecretFile(file));
    if (problem) bad.push(`${r.path}: ${problem}`);
    else {
      const st = statSync(file);
      modes.add(`${(st.mode & 0o777).toString(8).padStart(4, '0')} uid ${st.uid}`);
    }
  }
  if (bad.length > 0) return fail(id, bad.join('; '), 'chmod 0600 (or 0400) and chown to the user gatehouse runs as (a root-owned file may be 0640 for its group only)');
  return pass(id, `${refs.length} secret file(s), ${[...modes].join(', ')}`);
}

/** Names of variables that hold secrets by convention; values are never printed. */
const SECRET_ENV = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|HMAC|CREDENTIALS?)$|^PGPASSWORD$|^REDISCLI_AUTH$/i;

function readEnviron(pid: number): NodeJS.ProcessEnv | null {
  try {
    const env: NodeJS.ProcessEnv = {};
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return env;
  } catch {
    return null;
  }
}

function checkSecretsInline(c: Ctx): CheckResult {
  const id = 'secrets_inline_env';
  const bad: string[] = [];
  if (c.config.state.redis && urlHasInlinePassword(c.config.state.redis.url)) bad.push('state.redis.url carries a password');
  if (c.config.state.postgres && urlHasInlinePassword(c.config.state.postgres.url)) bad.push('state.postgres.url carries a password');
  const env = c.opts.pid !== undefined ? readEnviron(c.opts.pid) : (c.opts.env ?? process.env);
  if (env === null) bad.push(`cannot read /proc/${c.opts.pid}/environ`);
  else {
    for (const [k, v] of Object.entries(env)) {
      if (k === 'CREDENTIALS_DIRECTORY' || v === undefined || v === '') continue;
      if (SECRET_ENV.test(k)) bad.push(`environment variable ${k} looks like a secret`);
      else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) && urlHasInlinePassword(v)) bad.push(`environment variable ${k} is a URL with a password`);
    }
  }
  if (bad.length > 0) return fail(id, bad.join('; '), 'keep secrets in files referenced by *_file keys (mode 0600), systemd LoadCredential= or Secret volumes, never in the environment (visible in /proc/PID/environ, docker inspect, crash dumps)');
  return pass(id, `no inline secrets; no secret-looking variables in the ${c.opts.pid !== undefined ? `environment of process ${c.opts.pid}` : 'environment'}`);
}

function checkAdmin(c: Ctx): CheckResult {
  const id = 'admin_listener';
  const a = c.config.admin;
  if (!a.enabled) return pass(id, 'disabled');
  const addr = parseListenAddress(a.listen);
  const auth = a.client_certificates && a.tls ? 'client certificates' : a.token_file ? 'bearer token' : 'none (admin API refused)';
  if (!addr) return fail(id, `bad address ${a.listen}`, 'fix admin.listen');
  if (isLoopbackHost(addr.host)) return pass(id, `loopback only (${a.listen}), ${a.tls ? 'HTTPS' : 'HTTP'}, API authentication: ${auth}`);
  if (a.token_file && !a.tls) return fail(id, `${a.listen} is reachable from the network over plain HTTP and accepts a bearer token: the token crosses the network in clear text`, 'bind admin.listen to loopback, or add admin.tls (and preferably client certificates)');
  return warn(id, `${a.listen} is reachable from the network (${a.tls ? 'HTTPS' : 'HTTP'}, API authentication: ${auth}); /metrics, /healthz and /readyz need no authentication`, 'restrict who can reach it (firewall, Kubernetes NetworkPolicy) or bind it to loopback');
}

function handshakeMaxTls11(host: string, port: number): Promise<'accepted' | 'refused' | 'unreachable'> {
  return new Promise((ok) => {
    const s = tlsConnect({ host, port, servername: 'localhost', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false, timeout: 3000 });
    const done = (r: 'accepted' | 'refused' | 'unreachable') => {
      s.destroy();
      ok(r);
    };
    s.once('secureConnect', () => done('accepted'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' ? 'unreachable' : 'refused'));
    s.once('timeout', () => done('unreachable'));
  });
}

async function checkTls(c: Ctx): Promise<CheckResult> {
  const id = 'tls';
  const tlsListeners = c.config.listen.filter((l) => l.tls);
  const plain = c.config.listen.filter((l) => !l.tls && !l.redirect_https);
  const probes: string[] = [];
  const accepted: string[] = [];
  for (const l of [...tlsListeners, ...(c.config.admin.enabled && c.config.admin.tls ? [{ address: c.config.admin.listen }] : [])]) {
    const r = reachable(l.address);
    if (!r) continue;
    const outcome = await handshakeMaxTls11(r.host, r.port);
    if (outcome === 'accepted') accepted.push(l.address);
    else if (outcome === 'refused') probes.push(l.address);
  }
  if (accepted.length > 0) return fail(id, `TLS 1.1 or older accepted on ${accepted.join(', ')}`, 'whatever answers there is not gatehouse (it refuses TLS < 1.2): find and stop it');
  if (tlsListeners.length === 0) return warn(id, 'no HTTPS listener: clients talk plain HTTP to gatehouse', 'add a listener with tls (internal_ca or certificate files), or make sure TLS ends in front of gatehouse on a trusted network');
  const note = probes.length > 0 ? `; TLS 1.1 handshake refused on ${probes.join(', ')}` : ' (not running: no handshake tried)';
  return pass(id, `${tlsListeners.length} HTTPS listener(s), minimum TLS 1.2${note}${plain.length > 0 ? `; plain HTTP also on ${plain.map((l) => l.address).join(', ')}` : ''}`);
}

function certFiles(config: Config): Array<{ path: string; file: string }> {
  return fileRefs(config).filter((r) => /(^|\.)cert_file$/.test(r.path));
}

function checkCertificates(c: Ctx): CheckResult {
  const id = 'certificates';
  const warnMs = c.config.tls.expiry_warning;
  const expired: string[] = [];
  const expiring: string[] = [];
  let n = 0;
  const look = (what: string, pem: string, soonMs: number) => {
    n++;
    const notAfter = Date.parse(new X509Certificate(pem).validTo);
    if (notAfter <= c.now) expired.push(`${what} expired ${new Date(notAfter).toISOString()}`);
    else if (notAfter - c.now < soonMs) expiring.push(`${what} expires ${new Date(notAfter).toISOString()}`);
  };
  for (const r of certFiles(c.config)) {
    try {
      look(r.path, readFileSync(resolve(c.dir, r.file), 'utf8'), warnMs);
    } catch (e) {
      expired.push(`${r.path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (c.config.ca) {
    const p = caPaths(resolve(c.dir, c.config.ca.dir));
    for (const [what, file] of [['CA root', p.rootCert], ['CA intermediate', p.intermediateCert]] as const) {
      try {
        look(what, readFileSync(file, 'utf8'), 90 * 86_400_000);
      } catch {
        expired.push(`${what}: cannot read ${file}`);
      }
    }
  }
  for (const m of metric(c.live, 'gatehouse_tls_certificate_expiry_timestamp_seconds')) {
    n++;
    const at = m.value * 1000;
    if (at <= c.now) expired.push(`${m.labels.name} (served now) expired`);
    else if (at - c.now < warnMs) expiring.push(`${m.labels.name} (served now) expires ${new Date(at).toISOString()}`);
  }
  if (expired.length > 0 || expiring.length > 0) {
    return fail(id, [...expired, ...expiring].join('; '), 'replace expiring certificate files (gatehouse reloads them); for internal_ca certificates look for tls_renewal_failed in the log');
  }
  if (n === 0) return skip(id, 'no certificates configured');
  return pass(id, `${n} certificate(s) valid for longer than tls.expiry_warning (CA: 90 days)`);
}

function checkCaKey(c: Ctx): CheckResult {
  const id = 'ca_key';
  if (!c.config.ca) return skip(id, 'no internal CA');
  const dir = resolve(c.dir, c.config.ca.dir);
  const p = caPaths(dir);
  const bad: string[] = [];
  const warns: string[] = [];
  try {
    const st = statSync(p.intermediateKey);
    if ((st.mode & 0o077) !== 0) bad.push(`${CA_FILES.intermediateKey} has mode ${(st.mode & 0o777).toString(8)}`);
    if (!readFileSync(p.intermediateKey, 'utf8').includes('ENCRYPTED PRIVATE KEY')) bad.push(`${CA_FILES.intermediateKey} is not encrypted`);
  } catch (e) {
    bad.push(`cannot read ${p.intermediateKey}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (existsSync(p.rootKey)) {
    const text = readFileSync(p.rootKey, 'utf8');
    if (!text.includes('ENCRYPTED PRIVATE KEY')) bad.push(`the root key ${p.rootKey} is on the gateway host, unencrypted`);
    else warns.push(`the root key ${p.rootKey} is on the gateway host (encrypted)`);
  }
  if (bad.length > 0) return fail(id, bad.join('; '), 'move root.key offline (the gateway needs only root.crt, intermediate.crt and the encrypted intermediate.key), chmod 0600 the intermediate key; re-create the CA with gatehouse ca init if a key was exposed');
  if (warns.length > 0) return warn(id, warns.join('; '), 'move root.key offline: the gateway never needs it');
  return pass(id, 'intermediate key encrypted (0600), root key not on this host');
}

const LOGIN_PATH = /log-?in|sign-?in|auth|token|session|password|oauth/i;

function checkLoginLimits(c: Ctx): CheckResult {
  const id = 'login_rate_limit';
  const found: string[] = [];
  const shadow: string[] = [];
  const loose: string[] = [];
  for (const s of c.config.sites) {
    for (const r of s.rate_limits) {
      if (!(r.paths ?? []).some((p) => LOGIN_PATH.test(p))) continue;
      const at = `${s.id}/${r.id}`;
      if (r.shadow) shadow.push(at);
      else {
        found.push(at);
        if ((r.limit * 60_000) / r.window > 10) loose.push(`${at} allows ${((r.limit * 60_000) / r.window).toFixed(0)}/min`);
      }
    }
  }
  if (found.length === 0) {
    return fail(id, shadow.length > 0 ? `login rules are in shadow mode only (${shadow.join(', ')})` : 'no enforced rate-limit rule covers a login path', "add to the site with the login page: rate_limits: [{id: login, limit: 10, window: 1m, paths: ['/login*']}] (Atlas: 10/min on login paths)");
  }
  if (loose.length > 0) return warn(id, `login limits above 10/min: ${loose.join(', ')}`, 'lower them to 10 per minute (Atlas)');
  return pass(id, `login paths limited: ${found.join(', ')}`);
}

function weakHeader(name: string, value: string | undefined): string | null {
  if (value === undefined) return `${name} is removed`;
  const v = value.toLowerCase();
  switch (name.toLowerCase()) {
    case 'strict-transport-security': {
      const age = Number(/max-age=(\d+)/.exec(v)?.[1] ?? 0);
      return age < 31_536_000 ? `${name} max-age ${age} is under one year` : null;
    }
    case 'x-frame-options':
      return v === 'deny' || v === 'sameorigin' ? null : `${name} is ${JSON.stringify(value)}`;
    case 'x-content-type-options':
      return v === 'nosniff' ? null : `${name} is ${JSON.stringify(value)}`;
    case 'referrer-policy':
      return /unsafe-url|no-referrer-when-downgrade/.test(v) || v.trim() === '' ? `${name} is ${JSON.stringify(value)}` : null;
    case 'permissions-policy':
      return v.trim() === '' ? `${name} is empty` : null;
    default:
      return null;
  }
}

function checkHeaders(c: Ctx): CheckResult {
  const id = 'security_headers';
  const bad: string[] = [];
  for (const s of c.config.sites) {
    const policy = compileHeaderPolicy(c.config.headers, s.headers);
    const set = new Map<string, string>();
    // What an HTTPS client receives: the set that includes HSTS.
    for (let i = 0; i < policy.setHttps.length; i += 2) set.set((policy.setHttps[i] as string).toLowerCase(), policy.setHttps[i + 1] as string);
    for (const [name] of DEFAULT_SECURITY_HEADERS) {
      const w = weakHeader(name, set.get(name.toLowerCase()));
      if (w) bad.push(`${s.id}: ${w}`);
    }
    if (set.has('server') || set.has('x-powered-by')) bad.push(`${s.id}: sets a Server/X-Powered-By header`);
  }
  if (bad.length > 0) return fail(id, bad.join('; '), 'remove the override from headers.set/headers.remove (the defaults are the Atlas set: HSTS 1 year, SAMEORIGIN, nosniff, strict-origin-when-cross-origin, Permissions-Policy)');
  return pass(id, `the five security headers at full strength on ${c.config.sites.length} site(s)`);
}

function checkTrustedProxies(c: Ctx): CheckResult {
  const id = 'trusted_proxies';
  const list = c.config.trusted_proxies;
  if (list.length === 0) return pass(id, 'none: X-Forwarded-For is never believed');
  const bad: string[] = [];
  const broad: string[] = [];
  for (const t of list) {
    const p = parseCidr(t);
    if (!p) continue;
    if (p.prefix === 0 || p.coversIpv4) bad.push(`${t} trusts every ${p.coversIpv4 && p.prefix !== 0 ? 'IPv4 ' : ''}peer`);
    else if ((p.family === 4 && p.prefix < 16) || (p.family === 6 && p.prefix < 48)) broad.push(`${t} (/${p.prefix})`);
  }
  if (bad.length > 0) return fail(id, bad.join('; '), 'list only your load balancers\' addresses: any client in a trusted range can pick its own IP via X-Forwarded-For (defeating IP filters and rate limits)');
  if (broad.length > 0) return warn(id, `broad ranges: ${broad.join(', ')}`, 'narrow trusted_proxies to the load balancers');
  return pass(id, `${list.length} narrow range(s)`);
}

function checkStores(c: Ctx): CheckResult {
  const id = 'store_tls';
  const bad = unencryptedStores(c.config);
  if (bad.length > 0) return fail(id, bad.map((b) => b.message).join('; '), 'add state.postgres.tls / a rediss:// URL with state.redis.tls (verify-full), or keep the store on loopback');
  const used: string[] = [];
  const pg = c.config.state.postgres;
  if (pg && (c.config.audit.store === 'postgres' || c.config.identities.store === 'postgres')) used.push(`PostgreSQL ${pg.tls ? 'over verified TLS' : `on loopback (${storeHost(pg.url)})`}`);
  const r = c.config.state.redis;
  if (r && c.config.state.store === 'redis') used.push(`Redis ${r.url.startsWith('rediss:') ? 'over verified TLS' : `on loopback (${storeHost(r.url)})`}`);
  return used.length > 0 ? pass(id, used.join(', ')) : pass(id, 'embedded state only (no network store)');
}

async function checkAudit(c: Ctx): Promise<CheckResult> {
  const id = 'audit';
  const a = c.config.audit;
  if (!a.enabled) return fail(id, 'audit.enabled is false: no audit trail', 'enable audit with an HMAC key and a checkpoint key (docs/audit.md)');
  if (a.checkpoint_key_file === undefined) return fail(id, 'no audit.checkpoint_key_file: deleting the newest records would go unnoticed', 'gatehouse audit keys generate --private F --public F, then set audit.checkpoint_key_file');
  const spool = metric(c.live, 'gatehouse_audit_spool_bytes')[0]?.value ?? 0;
  let store;
  try {
    const keys = loadAuditKeys(a, c.dir);
    const state = readStreamState(stateDir(c.config.state.dir, c.dir));
    if (a.store !== 'postgres' && !existsSync(join(stateDir(c.config.state.dir, c.dir), 'audit.sqlite'))) {
      // Never started (nothing to verify yet), or the file is gone while the stream it held is still named.
      if (state !== null) return fail(id, `the audit store (SQLite in state.dir) is missing, but stream ${state.stream} was started: a wiped store`, 'restore the audit store from backup; gatehouse audit verify --config FILE names what is lost');
      return pass(id, 'enabled with a checkpoint key; no audit store yet (the gateway creates it at its first start)');
    }
    // Read-only, as audit verify opens it: doctor may run while the gateway writes, or as
    // another user, and must never create or change a store file.
    store = openAuditStore(c.config, c.dir, { readOnly: true });
    await store.init();
    const reports = await verifyStore(store, { keyring: keys.keyring, publicKey: keys.signer?.publicKey ?? null }, { streams: state === null ? [] : [state.stream] });
    const bad = reports.filter((r) => r.problems.length > 0);
    if (bad.length > 0) return fail(id, `chain verification failed: ${bad.map((r) => `${r.stream}: ${r.problems.length} problem(s), first ${JSON.stringify(r.problems[0])}`).join('; ')}`, 'investigate with gatehouse audit verify --config FILE; keep the export for evidence');
    const records = reports.reduce((n, r) => n + r.records, 0);
    if (spool > 0) return warn(id, `${reports.length} stream(s), ${records} record(s) verify; ${spool} bytes wait in the spool (store refusing writes)`, 'restore the audit store');
    return pass(id, `enabled with a checkpoint key; ${reports.length} stream(s), ${records} record(s), chain and checkpoints verify`);
  } catch (e) {
    return fail(id, `cannot verify the audit trail: ${(e as Error).message}`, 'check the audit store and keys (gatehouse audit verify --config FILE)');
  } finally {
    await store?.close().catch(() => undefined);
  }
}

async function checkRevocation(c: Ctx): Promise<CheckResult> {
  const id = 'revocation_store';
  if (c.config.auth.issuers.length === 0) return skip(id, 'no token authentication (auth.issuers empty)');
  const live = metric(c.live, 'gatehouse_revocation_current')[0];
  if (live !== undefined) {
    return live.value === 1 ? pass(id, 'the running gateway confirms its revocation set is current') : fail(id, 'the running gateway reports its revocation set is not current (requests with tokens get 503)', 'restore the revocation store (Redis) connection');
  }
  let stores;
  try {
    stores = openIdentityStores(c.config, c.dir);
    await stores.ready();
    await stores.revocations.start();
    const current = stores.revocations.current(Date.now());
    return current ? pass(id, `reachable (${c.config.state.store === 'redis' ? 'Redis' : 'SQLite in state.dir'})`) : fail(id, 'reachable but the revocation set could not be confirmed current', 'check the revocation store');
  } catch (e) {
    return fail(id, `unreachable: ${(e as Error).message}`, 'start or fix the revocation store (state.redis); tokens are refused (503) while it is down');
  } finally {
    await stores?.close().catch(() => undefined);
  }
}

function checkPolicy(c: Ctx): CheckResult {
  const id = 'policy';
  const unprotected = c.config.sites.filter((s) => s.auth && !s.policy?.files).map((s) => s.id);
  const shadowOnly = c.config.sites.filter((s) => s.policy && !s.policy.files).map((s) => s.id);
  if (unprotected.length > 0) return fail(id, `site(s) with token authentication but no authorization policy: ${unprotected.join(', ')} (any valid token reaches every path)`, 'add policy: {files: [...]} with Cedar policies (deny by default) to each authenticated site (docs/policy.md)');
  const reloadFailures = metric(c.live, 'gatehouse_policy_reloads_total').filter((m) => m.labels.result === 'failure').reduce((n, m) => n + m.value, 0);
  const withPolicy = c.config.sites.filter((s) => s.policy);
  if (withPolicy.length === 0) return warn(id, 'no site has an authorization policy', 'add Cedar policies where identities reach upstreams (docs/policy.md)');
  if (shadowOnly.length > 0) return warn(id, `only a shadow policy set (shadow_files, nothing enforced) on ${shadowOnly.join(', ')}`, 'move the files from shadow_files to files once the shadow decisions look right');
  if (reloadFailures > 0) return warn(id, `${reloadFailures} policy reload(s) were refused since start (the last good set serves)`, 'look for policy_reload_failed in the log');
  return pass(id, `enforced Cedar policy on ${withPolicy.length} site(s); files load`);
}

function checkRunning(c: Ctx): CheckResult {
  const id = 'running';
  if (c.adminUrl === null) return skip(id, 'admin listener disabled: no live checks');
  if (c.live === null) return skip(id, `not running (nothing answers ${c.adminUrl}/readyz): checked the files only`);
  if (c.live.ready.status === 200) return pass(id, `${c.adminUrl}/readyz: ready`);
  return fail(id, `${c.adminUrl}/readyz: ${c.live.ready.status} ${c.live.ready.reason ?? ''}`.trim(), 'see docs/operations.md (readiness reasons) and the log');
}

/** Runs every check; the order is the order of the output. */
export async function runDoctor(config: Readonly<Config>, dir: string, opts: DoctorOptions = {}): Promise<CheckResult[]> {
  const adminUrl = adminBase(config, opts.admin);
  const live = await probeLive(config, dir, adminUrl);
  const c: Ctx = { config, dir, opts, now: opts.now ?? Date.now(), live, adminUrl };
  return [
    checkConfig(c),
    checkRunning(c),
    checkPrivileges(c),
    checkSecretFiles(c),
    checkSecretsInline(c),
    checkAdmin(c),
    await checkTls(c),
    checkCertificates(c),
    checkCaKey(c),
    checkLoginLimits(c),
    checkHeaders(c),
    checkTrustedProxies(c),
    checkStores(c),
    await checkAudit(c),
    await checkRevocation(c),
    checkPolicy(c),
  ];
}
