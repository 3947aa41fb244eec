/**
 * One test per item of the one-reading rule (issue #11, docs/lifecycle.md) that the
 * differential corpus does not cover on its own: the per-site reading settings
 * (escaped_path decode/keep, path_parameters, header_underscores, body_types, upgrades,
 * unknown_host), and what happens to the exchanges a closing connection leaves behind
 * (log line, audit record, in-flight count). Express is the upstream here (in-process);
 * the three-framework corpus is in corpus.test.ts and generated.test.ts.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { auditFiles, type AuditFiles } from '../../audit/test-files.js';
import { ConfigError, loadConfig } from '../../config/load.js';
import { request, writeConfig } from '../../testing/harness.js';
import { get } from './corpus.js';
import { check, FORBIDDEN_MODEL, labConfigWith, labKey, OUTSIDE, runCase, startLab, until, type Case, type Lab, type LabOptions } from './lab.js';
import { exchange } from './wire.js';

const key = await labKey();
const FILES = [['Host', 'files.test']] as const;
let tagN = 0;
const tag = () => `r${tagN++}`;

async function expectClean(lab: Lab, c: Case): Promise<void> {
  const { report } = await check(lab, c, tag());
  assert.equal(report, '', report);
}

function withLab(opts: LabOptions, body: (lab: () => Lab) => void): void {
  let lab: Lab;
  before(async () => {
    lab = await startLab({ frameworks: ['express'], key, ...opts });
  });
  after(async () => {
    await lab?.close();
  });
  body(() => lab);
}

describe('escaped_path: decode (global default)', () => {
  withLab({ extra: { http: { request: { escaped_path: 'decode' } } } }, (lab) => {
    it('/admin/..%2fsecret is decided on and forwarded as /secret', async () => {
      await expectClean(lab(), { cls: 'rules', name: 'decode', requests: [get('/admin/..%2fsecret')], expect: [{ kind: 'forward', path: '/secret', route: 'public' }] });
    });
    it('/public%2f..%2fadmin%2fsecret is the admin site (dropped for 127.0.0.9)', async () => {
      await expectClean(lab(), { cls: 'rules', name: 'decode', requests: [get('/public%2f..%2fadmin%2fsecret')], expect: [{ kind: 'drop' }] });
    });
    it('%5C and %2E are decoded too: /a%5Cb/%2E%2E/hello is /a/hello', async () => {
      await expectClean(lab(), { cls: 'rules', name: 'decode', requests: [get('/a%5Cb/%2E%2E/hello')], expect: [{ kind: 'forward', path: '/a/hello' }] });
    });
    it('double encoding is decoded once: /a%252fb is forwarded with %25 kept, never as a separator', async () => {
      const t = lab().targets[0];
      assert.ok(t);
      const o = await runCase(t, { cls: 'rules', name: 'decode', requests: [get('/a%252fb')] }, tag());
      const r = o.readings[0];
      // Either refused, or forwarded so that no framework can read a `/` in it.
      if (r !== undefined) assert.doesNotMatch(r.raw_target.split('?')[0] as string, /%2f|%2F|\/b/, `forwarded ${r.raw_target}`);
    });
  });
});

describe('escaped_path: per-site override', () => {
  withLab({ sites: { llm: { request: { escaped_path: 'decode' } } } }, (lab) => {
    it('the llm site decodes /v1%2Fchat while files.test keeps refusing /a%2fb', async () => {
      await expectClean(lab(), { cls: 'rules', name: 'override', requests: [{ method: 'GET', target: '/v1%2Fchat', headers: [['Host', 'llm.test']] }], expect: [{ kind: 'forward', path: '/v1/chat' }] });
      await expectClean(lab(), { cls: 'rules', name: 'override', requests: [get('/a%2fb')], expect: [{ kind: 'refuse', code: 'ambiguous_path' }] });
    });
  });
});

describe('escaped_path: keep', () => {
  const files = { keyFile: key.key.file, kid: key.key.kid, publicPolicy: '/nonexistent.cedar', llmPolicy: '/nonexistent.cedar' };
  const problems = (cfg: Record<string, unknown>): string[] => {
    try {
      loadConfig(writeConfig(cfg));
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.filter((p) => p.severity === 'error').map((p) => `${p.path}: ${p.message}`);
    }
  };
  const bare = (site: Record<string, unknown>) => ({ listen: [{ address: '127.0.0.1:0' }], admin: { enabled: false }, sites: [{ id: 'raw', hosts: ['raw.test'], upstream: { urls: ['http://127.0.0.1:9'] }, ...site }] });

  it('check refuses keep on a site with path-based controls or a shared host, naming the key', () => {
    const p = problems(labConfigWith('http://127.0.0.1:9', files, { sites: { public: { request: { escaped_path: 'keep' } }, admin: { request: { escaped_path: 'keep' } } } }));
    assert.ok(p.some((x) => x.includes('sites[0].request.escaped_path')), p.join('\n'));
    assert.ok(p.some((x) => x.includes('sites[1].request.escaped_path')), p.join('\n'));
    for (const [what, site] of [
      ['path_prefix', { path_prefix: '/files' }],
      ['auth.paths', { auth: { paths: ['/x*'] } }],
      ['rate-limit paths', { rate_limits: [{ id: 'r', limit: 1, paths: ['/login'] }] }],
    ] as const) {
      const q = problems(bare({ request: { escaped_path: 'keep' }, ...site }));
      assert.ok(q.some((x) => x.includes('escaped_path')), `${what}: ${q.join('\n')}`);
    }
  });

  it('check accepts keep on a site of its own without path-based controls', () => {
    assert.deepEqual(problems(bare({ request: { escaped_path: 'keep' } })), []);
  });

  describe('forwarding', () => {
    withLab({ addSites: [{ id: 'raw', hosts: ['raw.test'], request: { escaped_path: 'keep' } }] }, (lab) => {
      it('GET /a%2fb/%2e%2e/c reaches the upstream as /a%2Fb/%2E%2E/c', async () => {
        const t = lab().targets[0];
        assert.ok(t);
        const o = await runCase(t, { cls: 'rules', name: 'keep', requests: [get('/a%2fb/%2e%2e/c', [['Host', 'raw.test']])] }, tag());
        assert.equal(o.wire.responses[0]?.status, 200, o.wire.bytes.toString('latin1'));
        assert.equal(o.readings[0]?.raw_target.split('?')[0], '/a%2Fb/%2E%2E/c');
      });
    });
  });
});

describe('path_parameters: reject', () => {
  withLab({ extra: { http: { request: { path_parameters: 'reject' } } } }, (lab) => {
    it('a ;parameter in any segment is refused with ambiguous_path; a path without one passes', async () => {
      await expectClean(lab(), { cls: 'rules', name: 'params', requests: [get('/public;x=1/hello')], expect: [{ kind: 'refuse', code: 'ambiguous_path' }] });
      await expectClean(lab(), { cls: 'rules', name: 'params', requests: [get('/public/..;/hello')], expect: [{ kind: 'refuse', code: 'ambiguous_path' }] });
      await expectClean(lab(), { cls: 'rules', name: 'params', requests: [get('/hello')], expect: [{ kind: 'forward', path: '/hello' }] });
    });
  });
});

describe('header_underscores', () => {
  describe('drop (default)', () => {
    withLab({}, (lab) => {
      it('a header name with _ never reaches the upstream', async () => {
        const t = lab().targets[0];
        assert.ok(t);
        const o = await runCase(t, { cls: 'rules', name: 'underscores', requests: [get('/hello', [...FILES, ['X_Custom', '1'], ['X_Gatehouse_Subject', 'root']])] }, tag());
        assert.equal(o.wire.responses[0]?.status, 200);
        assert.equal(o.readings[0]?.headers.x_custom, undefined);
        assert.equal(o.readings[0]?.headers.x_gatehouse_subject, undefined);
      });
    });
  });
  describe('reject', () => {
    withLab({ extra: { http: { request: { header_underscores: 'reject' } } } }, (lab) => {
      it('a header name with _ is refused with bad_header', async () => {
        await expectClean(lab(), { cls: 'rules', name: 'underscores', requests: [get('/hello', [...FILES, ['X_Custom', '1']])], expect: [{ kind: 'refuse', code: 'bad_header' }] });
        await expectClean(lab(), { cls: 'rules', name: 'underscores', requests: [get('/hello', [...FILES, ['X-Custom', '1']])], expect: [{ kind: 'forward', path: '/hello' }] });
      });
    });
  });
  describe('allow', () => {
    withLab({ extra: { http: { request: { header_underscores: 'allow' } } } }, (lab) => {
      it('X_Custom is forwarded; underscore spellings of headers gatehouse controls are still dropped', async () => {
        const t = lab().targets[0];
        assert.ok(t);
        const o = await runCase(
          t,
          { cls: 'rules', name: 'underscores', requests: [get('/hello', [...FILES, ['X_Custom', '1'], ['X_Gatehouse_Subject', 'root'], ['X_Real_IP', '127.0.0.1'], ['X_Forwarded_For', '127.0.0.1'], ['X_Request_Id', 'spoof']])] },
          tag(),
        );
        const h = o.readings[0]?.headers ?? {};
        assert.equal(o.wire.responses[0]?.status, 200);
        assert.equal(h.x_custom, '1');
        for (const n of ['x_gatehouse_subject', 'x_real_ip', 'x_forwarded_for', 'x_request_id']) assert.equal(h[n], undefined, `${n} reached the upstream`);
      });
    });
  });
});

describe('policy.body_types', () => {
  withLab({ sites: (files) => ({ llm: { policy: { files: [files.llmPolicy], body_fields: ['model'], max_body_bytes: '4KiB', body_types: ['application/json', 'application/vnd.api+json'] } } }) }, (labOf) => {
  it('a configured JSON type is read and evaluated; others are still 415', async () => {
    const lab = labOf();
    const post = (ct: string, body: string) => ({ method: 'POST', target: '/v1/chat', headers: [['Host', 'llm.test'], ['Content-Type', ct], ['Content-Length', String(body.length)]] as const, body });
    await expectClean(lab, { cls: 'rules', name: 'body_types', requests: [post('application/vnd.api+json', `{"model":"${FORBIDDEN_MODEL}"}`)], expect: [{ kind: 'refuse', code: 'policy_denied' }] });
    await expectClean(lab, { cls: 'rules', name: 'body_types', requests: [post('application/vnd.api+json', '{"model":"ok-1"}')], expect: [{ kind: 'forward' }] });
    await expectClean(lab, { cls: 'rules', name: 'body_types', requests: [post('text/plain', '{"model":"ok-1"}')], expect: [{ kind: 'refuse', code: 'unsupported_media_type' }] });
  });
  });
});

describe('connections: what a closing exchange leaves behind', () => {
  const TOKEN = 'admin-token-for-the-differential-suite-0123456789';
  let audit: AuditFiles;
  let lab: Lab;
  before(async () => {
    audit = auditFiles();
    const tokenFile = join(audit.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    lab = await startLab({ frameworks: ['express'], key, extra: { admin: { listen: '127.0.0.1:0', token_file: tokenFile }, state: { dir: audit.stateDir }, audit: audit.block() } });
  });
  after(async () => lab?.close());

  const target = () => {
    const t = lab.targets[0];
    assert.ok(t);
    return t;
  };
  async function records(): Promise<Array<Record<string, unknown>>> {
    await target().gw.gw.audit?.writer.flush();
    const r = await request(`${target().gw.adminUrl}/audit/records?limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200, r.body);
    return (JSON.parse(r.body) as { records: Array<{ body?: Record<string, unknown> } & Record<string, unknown>> }).records.map((x) => x.body ?? x);
  }

  // A request that says it is the last one (Connection: close, HTTP/1.0 without keep-alive):
  // Node's parser refuses the bytes after it, so they never become requests. They are not
  // forwarded and not answered; they are counted (RFC 9112 §9.6).
  for (const [name, first] of [
    ['Connection: close', get('/hello', [...FILES, ['Connection', 'close']])],
    ['HTTP/1.0 without keep-alive', get('/hello', FILES, 'HTTP/1.0')],
  ] as const) {
    it(`bytes pipelined behind ${name} are never parsed, forwarded or answered; they are counted`, async () => {
      const metric = async () => {
        const text = await (await fetch(`${target().gw.adminUrl}/metrics`)).text();
        return Number(/gatehouse_http_client_errors_total\{code="connection_closed"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const before = await metric();
      const path = `/pipelined-${tagN}`;
      const o = await runCase(target(), { cls: 'rules', name, requests: [first, get(path), get(`${path}/2`)], settle: true }, tag());
      assert.deepEqual(o.readings.filter((r) => r.raw_target.startsWith('/pipelined')), [], 'a pipelined request reached the upstream');
      assert.ok(o.wire.responses.length <= 1, `only the first request is answered: ${o.wire.responses.length} answers`);
      assert.ok((await metric()) > before, 'the ignored bytes are counted');
    });
  }

  for (const [name, first] of [
    ['an IP-filter drop', get('/admin/secret')],
    ['a 413 (chunked body over the limit)', { method: 'POST', target: '/upload', headers: [...FILES, ['Transfer-Encoding', 'chunked']], body: `2000\r\n${'a'.repeat(8192)}\r\n0\r\n\r\n` }],
    ['a 400 (ambiguous path)', get('/a%2fb')],
  ] as const) {
    it(`requests pipelined behind ${name} are never forwarded; each gets a log line and an audit record (connection_closed)`, async () => {
      const inflight = target().gw.gw.ctx.inflight;
      const path = `/pipelined-${tagN}`;
      const o = await runCase(target(), { cls: 'rules', name, requests: [first, get(path), get(`${path}/2`)], settle: true }, tag());
      assert.deepEqual(o.readings.filter((r) => r.raw_target.startsWith('/pipelined')), [], 'a pipelined request reached the upstream');
      const lines: Array<Record<string, unknown>> = [];
      for (const p of [path, `${path}/2`]) {
        const line = () => target().gw.logs.find((l) => l.msg === 'request' && l.path === p && l.code === 'connection_closed' && l.status === 0 && l.decision === 'refused');
        assert.ok(await until(() => line() !== undefined, 3000), `no connection_closed log line for ${p}:\n${JSON.stringify(o.logs, null, 1)}`);
        lines.push(line() as Record<string, unknown>);
      }
      const recs = await records();
      for (const l of lines) {
        const rec = recs.find((r) => r.request_id === l.req_id);
        assert.ok(rec !== undefined && rec.code === 'connection_closed' && rec.status === 0, `no connection_closed audit record for ${String(l.req_id)}: ${JSON.stringify(rec)}`);
        // One id per concept: the audit record says what the log line says.
        assert.equal(rec.decision, l.decision, `audit record decision ${String(rec.decision)}, log line ${String(l.decision)}`);
      }
      // The in-flight count (what a graceful shutdown waits for) is back where it was.
      assert.ok(await until(() => target().gw.gw.ctx.inflight <= inflight, 3000), `in-flight stuck at ${target().gw.gw.ctx.inflight} (was ${inflight})`);
    });
  }

  it('parser-level refusals (400 malformed, 431 oversize head) get a log line and an audit record', async () => {
    const bad = await exchange(target().gw.port, Buffer.from('GET /x HTTP/1.1\r\nHost: files.test\r\nBad Header\r\n\r\n'), { localAddress: OUTSIDE, responses: 1 });
    const big = await exchange(target().gw.port, Buffer.from(`GET /x HTTP/1.1\r\nHost: files.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), { localAddress: OUTSIDE, responses: 1 });
    assert.equal(bad.responses[0]?.status, 400);
    assert.equal(big.responses[0]?.status, 431);
    for (const [res, code] of [[bad, 'bad_request'], [big, 'headers_too_large']] as const) {
      const id = res.responses[0]?.headers['x-request-id'];
      assert.ok(id, 'the answer carries a request id');
      assert.ok(await until(() => target().gw.logs.some((l) => l.msg === 'request' && l.req_id === id && l.code === code && l.site === '-'), 3000), `no request log line for ${code}`);
      assert.ok((await records()).some((r) => r.request_id === id && r.code === code), `no audit record for ${code}`);
    }
  });

  for (const [how, second] of [
    ['nothing more', undefined],
    ['another request right after the answer', get('/admin/secret')],
  ] as const) {
    it(`an Upgrade: h2c request answered as a plain request is logged and leaves nothing in flight (the client sends ${how})`, async () => {
      const inflight = target().gw.gw.ctx.inflight;
      const h2c = get('/hello', [...FILES, ['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']]);
      const o = await runCase(target(), { cls: 'rules', name: 'h2c', requests: [h2c], ...(second === undefined ? {} : { second }), settle: true }, tag());
      const id = o.wire.responses[0]?.headers['x-request-id'];
      assert.equal(o.wire.responses[0]?.status, 200, o.wire.bytes.toString('latin1'));
      assert.ok(await until(() => target().gw.logs.some((l) => l.msg === 'request' && l.req_id === id), 3000), 'no log line for the h2c request');
      assert.ok(await until(() => target().gw.gw.ctx.inflight <= inflight, 3000), `in-flight stuck at ${target().gw.gw.ctx.inflight} (was ${inflight})`);
    });
  }

  for (const [how, path, status] of [
    ['403 and close', '/ws', 403],
    ['200 and keep the connection open', '/keep-alive/ws', 200],
  ] as const) {
    it(`a declined upgrade (upstream answers ${how}) gets its log line and leaves nothing in flight`, async () => {
      const inflight = target().gw.gw.ctx.inflight;
      const ws = get(path, [...FILES, ['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']]);
      const o = await runCase(target(), { cls: 'rules', name: 'declined upgrade', requests: [ws] }, tag());
      const id = o.wire.responses[0]?.headers['x-request-id'];
      assert.equal(o.wire.responses[0]?.status, status, o.wire.bytes.toString('latin1'));
      assert.ok(await until(() => target().gw.logs.some((l) => l.msg === 'request' && l.req_id === id), 3000), 'no log line for the declined upgrade');
      assert.ok(await until(() => target().gw.gw.ctx.inflight <= inflight, 3000), `in-flight stuck at ${target().gw.gw.ctx.inflight} (was ${inflight})`);
    });
  }
});

describe('unknown_host', () => {
  describe('close (default): an unknown host looks like a locked one', () => {
    withLab({}, (lab) => {
      it('zero bytes, like an IP-filter drop; logged as misdirected_request with status 0', async () => {
        const t = lab().targets[0];
        assert.ok(t);
        const unknown = await runCase(t, { cls: 'rules', name: 'unknown', requests: [get('/hello', [['Host', 'unknown.test']])] }, tag());
        const locked = await runCase(t, { cls: 'rules', name: 'locked', requests: [get('/hello', [['Host', 'vault.test']])] }, tag());
        assert.equal(unknown.wire.bytes.length, 0, unknown.wire.bytes.toString('latin1'));
        assert.equal(locked.wire.bytes.length, 0);
        assert.equal(unknown.wire.closed, true);
        assert.ok(await until(() => t.gw.logs.some((l) => l.msg === 'request' && l.code === 'misdirected_request' && l.status === 0), 3000), 'no misdirected_request log line with status 0');
      });
    });
  });
  describe('misdirected', () => {
    withLab({ extra: { http: { unknown_host: 'misdirected' } } }, (lab) => {
      it('421 misdirected_request', async () => {
        await expectClean(lab(), { cls: 'rules', name: 'misdirected', requests: [get('/hello', [['Host', 'unknown.test']])], expect: [{ kind: 'refuse', code: 'misdirected_request' }] });
      });
    });
  });
});

describe('upgrades', () => {
  withLab({ extra: { http: { request: { upgrades: [] } } } }, (lab) => {
    it('a protocol not in request.upgrades is handled as a plain request, answered with Connection: close, never a tunnel', async () => {
      const t = lab().targets[0];
      assert.ok(t);
      const ws = get('/ws', [...FILES, ['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']]);
      const o = await runCase(t, { cls: 'rules', name: 'upgrades', requests: [ws], second: get('/admin/secret'), settle: true }, tag());
      assert.equal(o.wire.responses[0]?.status, 200, o.wire.bytes.toString('latin1'));
      assert.match(o.wire.responses[0]?.headers.connection ?? '', /close/i);
      assert.equal(o.readings.length, 1, 'only the first request reached the upstream');
      assert.equal(o.readings[0]?.headers.upgrade, undefined, 'the Upgrade header was forwarded');
    });
  });
});
