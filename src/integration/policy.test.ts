/**
 * Authorization policy end to end: real tokens through the real gateway, the shipped
 * example policies, and an upstream that echoes the body it got. The decision matrix,
 * fail-closed start-up and reload, hot reload (in place and by ConfigMap symlink swap),
 * cache invalidation, shadow mode, and zones at run time.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Gateway } from '../server/gateway.js';
import { auditFiles } from '../audit/test-files.js';
import { loadConfig } from '../config/load.js';
import { baseConfig, request, startGateway, startUpstream, writeConfig, type Reply, type TestGateway, type Upstream } from '../testing/harness.js';
import { bearer, keyDir, makeKey, sign, type TestKey } from '../testing/tokens.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/policies/', import.meta.url));
const code = (r: Reply): string => (r.status < 300 ? 'ok' : (JSON.parse(r.body) as { error: { code: string } }).error.code);

/** Echoes method, url and the body it received. */
function bodyEcho(): Promise<Upstream> {
  return startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

function policyDir(...names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-policies-'));
  for (const n of names) copyFileSync(join(EXAMPLES, n), join(dir, n));
  return dir;
}

const issuers = (key: TestKey) => ({
  issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: key.kid, file: key.file }] }],
});

/** Polls until `check` returns true (file watching is asynchronous); fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms = 3000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return Date.now() - t0;
    if (Date.now() - t0 > ms) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('policy decision matrix (example policies)', { concurrency: false }, () => {
  let up: Upstream;
  let g: TestGateway;
  const key = makeKey(keyDir(), 'k1', 'ES256');
  const dir = policyDir('domain-isolation.cedar', 'roles.cedar', 'models.cedar', 'public.cedar', 'admin.cedar');
  const agent = (claims: Record<string, unknown>) => sign(key, { type: 'agent', ...claims });
  const human = (role: string | undefined) => sign(key, { sub: `h-${role ?? 'none'}`, type: 'human', role });

  before(async () => {
    up = await bodyEcho();
    const site = (id: string, prefix: string, extra: Record<string, unknown>) => ({ id, hosts: ['127.0.0.1'], path_prefix: prefix, upstream: { urls: [up.url] }, ...extra });
    g = await startGateway(
      baseConfig(up.url, {}, {
        auth: issuers(key),
        identities: { unknown_identity: 'allow' },
        sites: [
          site('billing', '/billing', { domain: 'billing', auth: {}, policy: { files: [join(dir, 'domain-isolation.cedar'), join(dir, 'roles.cedar')] } }),
          site('search', '/search', { domain: 'search', auth: {}, policy: { files: [join(dir, 'domain-isolation.cedar')] } }),
          site('llm', '/llm', { domain: 'llm', auth: {}, policy: { files: [join(dir, 'models.cedar')], body_fields: ['model'], max_body_bytes: 256 } }),
          site('public', '/', { policy: { files: [join(dir, 'public.cedar')] } }),
          { ...site('admin', '/', { auth: { paths: ['/api*'] }, policy: { files: [join(dir, 'admin.cedar'), join(dir, 'roles.cedar')] } }), hosts: ['localhost'] },
        ],
      }),
    );
  });
  after(async () => {
    await g?.close();
    await up?.close();
  });

  const get = async (path: string, token?: string, method = 'GET') => request(`${g.url}${path}`, { method, headers: token ? bearer(token) : {} });
  const llm = async (token: string, body: string) => request(`${g.url}/llm/v1/chat`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body });

  it('an agent reaches its own domain and not another one', async () => {
    const t = await agent({ sub: 'agent-b', domain: 'billing' });
    assert.equal(code(await get('/billing/invoices', t)), 'ok');
    const other = await get('/search/q', t);
    assert.equal(other.status, 403);
    assert.equal(code(other), 'policy_denied');
    assert.doesNotMatch(other.body, /agents-own-domain|cedar/i, 'policy ids are not sent to the client');
    const s = await agent({ sub: 'agent-s', domain: 'search' });
    assert.equal(code(await get('/search/q', s)), 'ok');
    assert.equal(code(await get('/billing/invoices', s)), 'policy_denied');
    // An agent without a domain reaches nothing (deny by default).
    assert.equal(code(await get('/billing/invoices', await agent({ sub: 'agent-n' }))), 'policy_denied');
  });

  it('forbid wins over permit', async () => {
    const q = await agent({ sub: 'agent-q', domain: 'billing', agent_id: 'agent-quarantined' });
    assert.equal(code(await get('/billing/invoices', q)), 'policy_denied');
    const line = g.logs.findLast((l) => l.code === 'policy_denied');
    assert.deepEqual(line?.policies, ['agents-blocked'], 'the log names the deciding forbid');
  });

  it('humans by role: viewer reads, operator writes, admin deletes', async () => {
    const viewer = await human('viewer');
    const operator = await human('operator');
    const admin = await human('admin');
    const nobody = await human(undefined);
    assert.equal(code(await get('/billing/x', viewer)), 'ok');
    assert.equal(code(await get('/billing/x', viewer, 'POST')), 'policy_denied');
    assert.equal(code(await get('/billing/x', operator, 'POST')), 'ok');
    assert.equal(code(await get('/billing/x', operator, 'DELETE')), 'policy_denied');
    assert.equal(code(await get('/billing/x', admin, 'DELETE')), 'ok');
    assert.equal(code(await get('/billing/x', nobody)), 'policy_denied');
    const ok = g.logs.findLast((l) => l.status === 200 && l.site === 'billing' && l.method === 'DELETE');
    assert.deepEqual(ok?.policies, ['humans-delete'], 'allowed requests log the permitting policy too');
  });

  it('allowed models on the LLM route, with the body forwarded unchanged', async () => {
    const t = await agent({ sub: 'agent-l', domain: 'llm' });
    const body = JSON.stringify({ model: 'small-1', messages: [{ role: 'user', content: 'hi' }] });
    const r = await llm(t, body);
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { body: string }).body, body, 'the upstream gets the bytes the policy read');
    assert.equal(code(await llm(t, JSON.stringify({ model: 'huge-9' }))), 'policy_denied');
    assert.equal(code(await llm(t, '{"messages":[]}')), 'policy_denied', 'no model: no permit');
    // A body without exactly one reading is refused, never evaluated as "no fields".
    assert.equal(code(await llm(t, 'not json')), 'invalid_body');
    // large-1 is permitted by the list but forbidden outside research: forbid wins.
    assert.equal(code(await llm(t, JSON.stringify({ model: 'large-1' }))), 'policy_denied');
    const research = await agent({ sub: 'agent-r', domain: 'research' });
    assert.equal(code(await llm(research, JSON.stringify({ model: 'large-1' }))), 'ok');
    // A body over policy.max_body_bytes is refused before it is read.
    assert.equal(code(await llm(t, JSON.stringify({ model: 'small-1', pad: 'x'.repeat(400) }))), 'body_too_large');
  });

  it('a chunked body with Expect: 100-continue is read for the policy and forwarded whole', async () => {
    const t = await agent({ sub: 'agent-k', domain: 'llm' });
    const parts = ['{"model":', '"small-1",', '"prompt":"hello"}'];
    const reply = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = httpRequest(`${g.url}/llm/v1/chat`, { method: 'POST', agent: false, headers: { ...bearer(t), 'content-type': 'application/json', expect: '100-continue' } });
      req.on('continue', () => {
        for (const p of parts) req.write(p);
        req.end();
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', fail);
      req.flushHeaders();
    });
    assert.equal(reply.status, 200, reply.body);
    assert.equal((JSON.parse(reply.body) as { body: string }).body, parts.join(''));
  });

  it('anonymous visitors on a site without auth: read yes, write no, forbidden path no', async () => {
    assert.equal(code(await get('/index.html')), 'ok');
    assert.equal(code(await get('/form', undefined, 'POST')), 'policy_denied');
    assert.equal(code(await get('/internal/metrics')), 'policy_denied');
  });

  it('the admin site: anonymous login page, staff by role, token required on /api', async () => {
    const admin = (path: string, token?: string, method = 'GET') => request(`${g.url}${path}`, { method, headers: { host: 'localhost', ...(token ? bearer(token) : {}) } });
    assert.equal(code(await admin('/login', undefined, 'POST')), 'ok', 'anonymous principal on a path without auth');
    assert.equal(code(await admin('/dashboards')), 'policy_denied');
    assert.equal(code(await admin('/api/users')), 'missing_token');
    const viewer = await human('viewer');
    assert.equal(code(await admin('/api/users', viewer)), 'ok');
    assert.equal(code(await admin('/api/users', viewer, 'DELETE')), 'policy_denied');
    assert.equal(code(await admin('/api/users', await human('admin'), 'DELETE')), 'ok');
  });

  it('steady state is served from the decision cache', async () => {
    const t = await agent({ sub: 'agent-c', domain: 'billing' });
    for (let i = 0; i < 5; i++) assert.equal(code(await get('/billing/same', t)), 'ok');
    const m = await request(`${g.adminUrl}/metrics`);
    const hits = /gatehouse_policy_cache_total\{site="billing",result="hit"\} (\d+)/.exec(m.body);
    assert.ok(hits && Number(hits[1]) >= 4, 'repeated identical requests hit the cache');
  });
});

describe('policy lifecycle: fail closed, hot reload, shadow mode', { concurrency: false }, () => {
  let up: Upstream;
  const key = makeKey(keyDir(), 'k2', 'ES256');
  before(async () => {
    up = await bodyEcho();
  });
  after(async () => {
    await up?.close();
  });

  const config = (policy: Record<string, unknown>) =>
    baseConfig(up.url, { domain: 'billing', auth: {}, policy }, { auth: issuers(key), identities: { unknown_identity: 'allow' } });

  it('a broken policy file stops start-up with the file named; a missing one too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-broken-'));
    writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource');
    const file = writeConfig(config({ files: [join(dir, 'p.cedar')] }));
    assert.throws(() => loadConfig(file), (err: Error) => /sites\[0\]\.policy\.files/.test(err.message) && err.message.includes('p.cedar'));
    const missing = writeConfig(config({ files: [join(dir, 'nope.cedar')] }));
    assert.throws(() => loadConfig(missing), /nope\.cedar/);
    // Past check (the file broke after validation): the gateway itself refuses to start.
    writeFileSync(join(dir, 'q.cedar'), 'permit(principal, action, resource);');
    const loaded = loadConfig(writeConfig(config({ files: [join(dir, 'q.cedar')] })));
    writeFileSync(join(dir, 'q.cedar'), 'forbid(principal');
    await assert.rejects(Gateway.start({ loaded, watch: false, logger: (await import('pino')).pino({ level: 'silent' }) }), /q\.cedar/);
  });

  it('reload on file change: a new valid set applies within 1 s, an invalid one is refused and the last good set stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-reload-'));
    const file = join(dir, 'p.cedar');
    writeFileSync(file, '@id("allow-billing") permit(principal is Agent, action, resource) when { principal has domain && principal.domain == resource.domain };');
    const g = await startGateway(config({ files: [file] }));
    try {
      const t = await sign(key, { sub: 'a1', domain: 'billing' });
      const get = () => request(`${g.url}/x`, { headers: bearer(t) });
      assert.equal(code(await get()), 'ok');
      assert.equal(code(await get()), 'ok', 'cached allow');
      // A forbid arrives: the cached allow must not outlive the change.
      writeFileSync(file, '@id("allow-billing") permit(principal is Agent, action, resource);\n@id("stop") forbid(principal, action, resource);');
      const ms = await eventually(async () => code(await get()) === 'policy_denied');
      assert.ok(ms < 1000, `applied after ${ms} ms`);
      // Broken: refused, logged, counted; the last good set (deny) stays.
      writeFileSync(file, 'permit(principal,');
      await eventually(async () => g.logs.some((l) => l.event === 'policy_reload_failed'));
      assert.equal(code(await get()), 'policy_denied');
      const m = await request(`${g.adminUrl}/metrics`);
      assert.match(m.body, /gatehouse_policy_reloads_total\{site="app",result="failure"\} [1-9]/);
      const line = g.logs.find((l) => l.event === 'policy_reload_failed');
      assert.equal(line?.file, file);
      // Fixed again: applies.
      writeFileSync(file, '@id("allow-all") permit(principal, action, resource);');
      await eventually(async () => code(await get()) === 'ok');
    } finally {
      await g.close();
    }
  });

  it('reload by Kubernetes ConfigMap symlink swap (..data)', async () => {
    const mount = mkdtempSync(join(tmpdir(), 'gatehouse-configmap-'));
    const version = (name: string, text: string) => {
      mkdirSync(join(mount, name));
      writeFileSync(join(mount, name, 'policy.cedar'), text);
    };
    // The kubelet layout: policy.cedar -> ..data/policy.cedar, ..data -> ..<timestamp>.
    version('..v1', '@id("v1-allow") permit(principal, action, resource);');
    symlinkSync('..v1', join(mount, '..data'));
    symlinkSync(join('..data', 'policy.cedar'), join(mount, 'policy.cedar'));
    const g = await startGateway(config({ files: [join(mount, 'policy.cedar')] }));
    try {
      const t = await sign(key, { sub: 'a2', domain: 'billing' });
      const get = () => request(`${g.url}/x`, { headers: bearer(t) });
      assert.equal(code(await get()), 'ok');
      // The atomic swap: a new ..data_tmp link renamed over ..data; the old version removed.
      version('..v2', '@id("v2-deny") forbid(principal, action, resource);\n@id("v2-allow") permit(principal, action, resource);');
      symlinkSync('..v2', join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
      rmSync(join(mount, '..v1'), { recursive: true });
      const ms = await eventually(async () => code(await get()) === 'policy_denied');
      assert.ok(ms < 1000, `applied after ${ms} ms`);
      assert.deepEqual(g.logs.findLast((l) => l.code === 'policy_denied')?.policies, ['v2-deny']);
      assert.ok(readFileSync(join(mount, 'policy.cedar'), 'utf8').includes('v2'));
    } finally {
      await g.close();
    }
  });

  it('shadow_files beside files: the shadow set is evaluated and counted, never enforced; after a restart the enforced set still enforces', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-shadow-'));
    writeFileSync(join(dir, 'old.cedar'), '@id("old-allow") permit(principal, action, resource);\n@id("old-no-delete") forbid(principal, action == Action::"DELETE", resource);');
    writeFileSync(join(dir, 'new.cedar'), '@id("new-get-only") permit(principal, action == Action::"GET", resource);');
    const both = config({ files: [join(dir, 'old.cedar')], shadow_files: [join(dir, 'new.cedar')] });
    const t = await sign(key, { sub: 'a3', domain: 'billing' });
    let g = await startGateway(both);
    try {
      // The new set would refuse POST; the enforced (old) one allows it and refuses DELETE.
      const post = await request(`${g.url}/x`, { method: 'POST', headers: bearer(t) });
      assert.equal(code(post), 'ok');
      const line = g.logs.findLast((l) => l.method === 'POST' && l.status === 200);
      assert.deepEqual(line?.policy_shadow, { decision: 'deny', policies: [] });
      assert.deepEqual(line?.policies, ['old-allow']);
      assert.equal(code(await request(`${g.url}/x`, { method: 'DELETE', headers: bearer(t) })), 'policy_denied');
      const m = await request(`${g.adminUrl}/metrics`);
      assert.match(m.body, /gatehouse_policy_decisions_total\{site="app",mode="shadow",decision="deny"\} 2/);
      assert.match(m.body, /gatehouse_policy_decisions_total\{site="app",mode="enforce",decision="deny"\} 1/);
      // A file change to the shadow set updates the shadow set, never the enforced one.
      writeFileSync(join(dir, 'new.cedar'), '@id("new-get-only") permit(principal, action == Action::"GET", resource);\n@id("new-stop") forbid(principal, action, resource);');
      await eventually(async () => {
        const r = await request(`${g.url}/x`, { headers: bearer(t) });
        assert.equal(code(r), 'ok', 'the enforced (old) set still decides');
        const l = g.logs.findLast((x) => x.method === 'GET' && x.status === 200);
        return JSON.stringify(l?.policy_shadow) === JSON.stringify({ decision: 'deny', policies: ['new-stop'] });
      });
      assert.equal(g.logs.findLast((x) => x.event === 'policy_reloaded')?.shadow, true);
      writeFileSync(join(dir, 'new.cedar'), '@id("new-get-only") permit(principal, action == Action::"GET", resource);');
      await eventually(async () => g.logs.filter((x) => x.event === 'policy_reloaded').length >= 2);
    } finally {
      await g.close();
    }
    // A restart (a fresh gateway from the same config): nothing is inherited, and the
    // enforced set is the config's `files`, so it still enforces; the shadow set still only reports.
    g = await startGateway(both);
    try {
      assert.equal(code(await request(`${g.url}/x`, { method: 'DELETE', headers: bearer(t) })), 'policy_denied', 'enforced after the restart');
      assert.equal(code(await request(`${g.url}/x`, { method: 'POST', headers: bearer(t) })), 'ok', 'the shadow set does not enforce after the restart either');
      assert.deepEqual(g.logs.findLast((l) => l.method === 'POST')?.policy_shadow, { decision: 'deny', policies: [] });
      // Promoted: the new files move to `files`; now they are enforced.
      g.write(config({ files: [join(dir, 'new.cedar')] }));
      assert.equal((await g.gw.reload()).ok, true);
      assert.equal(code(await request(`${g.url}/x`, { method: 'POST', headers: bearer(t) })), 'policy_denied');
      assert.equal(code(await request(`${g.url}/x`, { headers: bearer(t) })), 'ok');
    } finally {
      await g.close();
    }
  });

  it('the removed `shadow: true` is a config error that says what to use instead; a policy block needs files or shadow_files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-shadow-key-'));
    writeFileSync(join(dir, 'p.cedar'), '@id("p") permit(principal, action, resource);');
    assert.throws(
      () => loadConfig(writeConfig(config({ files: [join(dir, 'p.cedar')], shadow: true }))),
      (err: Error) => /sites\[0\]\.policy\.shadow/.test(err.message) && /shadow_files/.test(err.message),
    );
    assert.throws(() => loadConfig(writeConfig(config({}))), (err: Error) => /sites\[0\]\.policy/.test(err.message) && /files.*shadow_files/.test(err.message));
    assert.throws(() => loadConfig(writeConfig(config({ shadow_files: [join(dir, 'nope.cedar')] }))), (err: Error) => /sites\[0\]\.policy\.shadow_files/.test(err.message));
  });

  it('an evaluation error refuses (fail closed), even when a permit applies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-everr-'));
    // An overflow passes schema validation (types are right) but errors at run time, whatever
    // the hour: Cedar skips the forbid, the permit applies, gatehouse refuses anyway.
    writeFileSync(join(dir, 'p.cedar'), '@id("all") permit(principal, action, resource);\n@id("no-guests") forbid(principal, action, resource) when { 9223372036854775807 + 1 > context.hour };');
    const g = await startGateway(config({ files: [join(dir, 'p.cedar')] }));
    try {
      const t = await sign(key, { sub: 'a5', domain: 'billing' });
      const r = await request(`${g.url}/x`, { headers: bearer(t) });
      assert.equal(code(r), 'policy_denied');
      const line = g.logs.findLast((l) => l.code === 'policy_denied');
      assert.deepEqual(line?.policies, ['no-guests']);
      assert.equal(line?.rule, 'error');
      assert.ok(g.logs.some((l) => l.event === 'policy_evaluation_failed'));
    } finally {
      await g.close();
    }
  });

  it('the audit record carries the ids of the deciding policies', async () => {
    const dir = policyDir('domain-isolation.cedar');
    const files = auditFiles();
    const g = await startGateway(
      baseConfig(up.url, { domain: 'billing', auth: {}, policy: { files: [join(dir, 'domain-isolation.cedar')] } }, { auth: issuers(key), identities: { unknown_identity: 'allow' }, state: { dir: files.stateDir }, audit: files.block() }),
    );
    try {
      assert.equal(code(await request(`${g.url}/x`, { headers: bearer(await sign(key, { sub: 'a6', domain: 'billing' })) })), 'ok');
      assert.equal(code(await request(`${g.url}/x`, { headers: bearer(await sign(key, { sub: 'a7', domain: 'search' })) })), 'policy_denied');
      await g.gw.audit?.writer.flush();
      const recs = (await g.gw.audit?.store.query({ limit: 100 })) ?? [];
      const allowed = recs.find((r) => r.subject === 'a6');
      const refused = recs.find((r) => r.subject === 'a7');
      assert.deepEqual(allowed?.policies, ['agents-own-domain']);
      assert.equal(refused?.code, 'policy_denied');
      assert.equal(refused?.stage, 'policy');
      assert.deepEqual(refused?.policies, [], 'deny by default: no policy decided');
    } finally {
      await g.close();
    }
  });

  it('a config reload with a broken policy is refused and the serving set stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cfgreload-'));
    writeFileSync(join(dir, 'ok.cedar'), 'permit(principal, action, resource);');
    writeFileSync(join(dir, 'bad.cedar'), 'permit(');
    const g = await startGateway(config({ files: [join(dir, 'ok.cedar')] }));
    try {
      const t = await sign(key, { sub: 'a4', domain: 'billing' });
      g.write(config({ files: [join(dir, 'bad.cedar')] }));
      assert.equal((await g.gw.reload()).ok, false);
      assert.equal(code(await request(`${g.url}/x`, { headers: bearer(t) })), 'ok');
      // The serving set is still watched after the refused reload.
      writeFileSync(join(dir, 'ok.cedar'), 'forbid(principal, action, resource);');
      await eventually(async () => code(await request(`${g.url}/x`, { headers: bearer(t) })) === 'policy_denied');
    } finally {
      await g.close();
    }
  });
});
