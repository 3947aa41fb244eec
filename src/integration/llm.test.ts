/**
 * The agent → LLM route end to end (issue 15): the official `openai` and `@anthropic-ai/sdk`
 * clients, each with an agent JWT as its API key, through the real gateway to a fake LLM
 * service (src/testing/llm-upstream.ts) that records which credential it got and streams
 * realistic server-sent events. Credentials per identity, model control, token budgets,
 * usage on the log line, the metrics and the audit record — and nowhere a credential.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import Database from 'better-sqlite3';
import { auditFiles } from '../audit/test-files.js';
import { subjectRevocation } from '../identity/revoke.js';
import { baseConfig, request, startGateway, type TestGateway } from '../testing/harness.js';
import { startLlmUpstream, type LlmUpstream } from '../testing/llm-upstream.js';
import { bearer, keyDir, makeKey, sign } from '../testing/tokens.js';

const SECRETS = {
  agentA: 'sk-agent-a-7f3e9c1d',
  research: 'sk-domain-research-44b2',
  claude: 'sk-ant-agent-c-93aa',
};

function secretFile(dir: string, name: string, value: string): string {
  const f = join(dir, name);
  writeFileSync(f, `${value}\n`, { mode: 0o600 });
  return f;
}

const code = (body: string): string => (JSON.parse(body) as { error: { code: string } }).error.code;

async function eventually<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('LLM route', { concurrency: false }, () => {
  let up: LlmUpstream;
  let g: TestGateway;
  const key = makeKey(keyDir(), 'k1', 'ES256');
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-llm-'));
  const audit = auditFiles();
  const token = (sub: string, claims: Record<string, unknown> = {}) => sign(key, { sub, type: 'agent', ...claims });
  const openai = (jwt: string) => new OpenAI({ apiKey: jwt, baseURL: `${g.url}/v1`, maxRetries: 0 });
  const lastLine = (pred: (l: Record<string, unknown>) => boolean) => g.logs.findLast((l) => l.msg === 'request' && pred(l));
  let credA = '';

  before(async () => {
    up = await startLlmUpstream();
    const files = {
      agentA: secretFile(dir, 'agent-a.key', SECRETS.agentA),
      research: secretFile(dir, 'research.key', SECRETS.research),
      claude: secretFile(dir, 'agent-c.key', SECRETS.claude),
    };
    credA = files.agentA;
    const models = { 'gpt-test': {}, fast: { upstream: 'gpt-test', max_output_tokens: 100 }, 'embed-test': {}, 'big-test': {} };
    g = await startGateway(
      baseConfig(up.url, {}, {
        auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: key.kid, file: key.file }] }] },
        identities: { unknown_identity: 'allow' },
        state: { dir: audit.stateDir },
        audit: audit.block(),
        sites: [
          {
            id: 'llm',
            hosts: ['127.0.0.1'],
            upstream: { urls: [up.url] },
            auth: {},
            llm: {
              models,
              grants: [
                { id: 'tight', match: { subjects: ['agent-tight'] }, models: ['gpt-test'], tokens_per_minute: 50 },
                { id: 'research', match: { domains: ['research'] }, models: ['*'], tokens_per_minute: 100_000, tools: true },
                { id: 'agents', match: { types: ['agent'] }, models: ['gpt-test', 'fast', 'embed-test'], tokens_per_minute: 100_000, max_output_tokens: 500, tools: false },
              ],
              credentials: { subjects: { 'agent-a': files.agentA, 'agent-tight': files.agentA }, domains: { research: files.research } },
            },
          },
          {
            id: 'claude',
            hosts: ['localhost'],
            upstream: { urls: [up.url] },
            auth: { api_key_header: true },
            llm: {
              provider: 'anthropic',
              models: { 'claude-test': {} },
              grants: [{ id: 'all', models: ['*'], tokens_per_day: 1_000_000 }],
              credentials: { subjects: { 'agent-c': files.claude } },
            },
          },
        ],
      }),
    );
  });
  after(async () => {
    await g?.close();
    await up?.close();
  });

  it('a plain chat call: the agent JWT is its API key, the upstream gets the agent’s own credential', async () => {
    const jwt = await token('agent-a');
    const before = up.calls.length;
    const r = await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.choices[0]?.message.content, 'Hello w1 w2 w3 w4');
    assert.equal(r.usage?.total_tokens, 17);
    const seen = up.calls[before];
    assert.equal(seen?.headers.authorization, `Bearer ${SECRETS.agentA}`);
    assert.ok(!JSON.stringify(seen?.headers).includes(jwt), 'the caller’s token never reaches the upstream');
    assert.equal(seen?.headers['accept-encoding'], 'identity');
    const line = lastLine((l) => l.site === 'llm' && l.status === 200);
    assert.deepEqual(line?.llm, { model: 'gpt-test', upstream_model: 'gpt-test', endpoint: 'chat', streamed: false, prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, usage: 'reported', ttfb_us: (line?.llm as { ttfb_us: number }).ttfb_us, credential: 'subject', rewritten: true });
    assert.ok((line?.llm as { ttfb_us: number }).ttfb_us > 0);
  });

  it('a body that needs no change is forwarded byte for byte; an alias and a clamp rewrite it canonically', async () => {
    const jwt = await token('agent-a');
    const body = '{ "model" : "gpt-test",\n "max_tokens": 20, "messages":[{"role":"user","content":"caf\\u00e9"}], "seed": 12345678901234567890.0 }';
    const before = up.calls.length;
    const r = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body });
    assert.equal(r.status, 200);
    assert.equal(up.calls[before]?.body, body, 'intact');
    const aliased = '{"model":"fast","max_tokens":1000,"messages":[{"role":"user","content":"hi"}],"temperature":0.7}';
    const r2 = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body: aliased });
    assert.equal(r2.status, 200);
    assert.equal(up.calls[before + 1]?.body, '{"model":"gpt-test","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"temperature":0.7}');
    assert.equal(up.calls[before + 1]?.headers['content-length'], String(Buffer.byteLength(up.calls[before + 1]?.body ?? '')));
    // No max_tokens at all: the grant's cap is sent, so the model's default cannot exceed it.
    await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body: '{"model":"gpt-test","messages":[]}' });
    assert.equal(up.calls[before + 2]?.body, '{"model":"gpt-test","messages":[],"max_tokens":500}');
  });

  it('a streamed chat call: unbuffered, usage read from the final chunk the gateway asked for and kept from the client', async () => {
    const jwt = await token('agent-a');
    const before = up.calls.length;
    const stream = await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 50 });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'Hello w1 w2 w3 w4');
    assert.ok(chunks.every((c) => c.choices.length === 1), 'the client did not ask for usage and gets no usage-only chunk');
    assert.deepEqual(JSON.parse(up.calls[before]?.body ?? '{}').stream_options, { include_usage: true });
    const line = await eventually(() => lastLine((l) => l.site === 'llm' && (l.llm as { streamed?: boolean } | undefined)?.streamed === true));
    assert.equal((line.llm as { total_tokens: number }).total_tokens, 17);
    assert.equal((line.llm as { usage: string }).usage, 'reported');
  });

  it('a client that asked for usage gets its usage chunk', async () => {
    const jwt = await token('agent-a');
    const stream = await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [], stream: true, stream_options: { include_usage: true }, max_tokens: 50 });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const c of stream) if (c.usage) usage = c.usage;
    assert.equal(usage?.total_tokens, 17);
  });

  it('embeddings', async () => {
    const jwt = await token('agent-a');
    const r = await openai(jwt).embeddings.create({ model: 'embed-test', input: 'hello' });
    assert.equal(r.data[0]?.embedding.length, 3);
    const line = await eventually(() => lastLine((l) => (l.llm as { endpoint?: string } | undefined)?.endpoint === 'embeddings'));
    assert.deepEqual([(line.llm as { prompt_tokens: number }).prompt_tokens, (line.llm as { completion_tokens: number }).completion_tokens], [12, 0]);
  });

  it('a forbidden model, tools and n are refused with a code, never forwarded', async () => {
    const jwt = await token('agent-a');
    const before = up.calls.length;
    await assert.rejects(openai(jwt).chat.completions.create({ model: 'big-test', messages: [] }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError && (e.error as { code?: string }).code === 'model_not_allowed');
    await assert.rejects(openai(jwt).chat.completions.create({ model: 'nope', messages: [] }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError);
    await assert.rejects(
      openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [], tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }),
      (e: unknown) => e instanceof OpenAI.PermissionDeniedError && (e.error as { code?: string }).code === 'llm_parameter_not_allowed',
    );
    await assert.rejects(openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [], n: 2 }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError);
    assert.equal(up.calls.length, before);
    // The research domain's grant allows every model and tools, with the domain's credential.
    const r = await openai(await token('agent-r', { domain: 'research' })).chat.completions.create({ model: 'big-test', messages: [], tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] });
    assert.equal(r.usage?.total_tokens, 17);
    assert.equal(up.calls[before]?.headers.authorization, `Bearer ${SECRETS.research}`);
  });

  it('an identity without a credential is refused: no implicit shared key', async () => {
    const before = up.calls.length;
    await assert.rejects(openai(await token('agent-b')).chat.completions.create({ model: 'gpt-test', messages: [] }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError && (e.error as { code?: string }).code === 'no_upstream_credential');
    assert.equal(up.calls.length, before);
  });

  it('bad input costs nothing: 400/413/415 with a code, never forwarded', async () => {
    const jwt = await token('agent-a');
    const before = up.calls.length;
    const post = (body: string | Buffer, type = 'application/json', path = '/v1/chat/completions') => request(`${g.url}${path}`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': type }, body });
    const cases: Array<[string | Buffer, number, string, string?]> = [
      ['not json', 400, 'invalid_body'],
      ['[1,2]', 400, 'invalid_body'],
      ['{"model":"gpt-test","model":"big-test"}', 400, 'invalid_body'],
      ['{"model":"gpt-test","Model":"big-test"}', 400, 'invalid_body'],
      ['{"model":"gpt-test","mod\\u0065l":"big-test"}', 400, 'invalid_body'],
      ['{"model":42}', 400, 'invalid_body'],
      ['{"messages":[]}', 400, 'invalid_body'],
      ['{"model":"gpt-test","max_tokens":"9"}', 400, 'invalid_body'],
      ['{"model":"gpt-test","stream":"yes"}', 400, 'invalid_body'],
      ['{"model":"gpt-test","MAX_TOKENS":100000}', 400, 'invalid_body'],
      [Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), 400, 'invalid_body'],
      ['{"model":"gpt-test"}', 415, 'unsupported_media_type', 'text/plain'],
      ['{"model":"gpt-test"}', 415, 'unsupported_media_type', 'application/json; charset=latin1'],
      [JSON.stringify({ model: 'gpt-test', pad: 'x'.repeat(1_100_000) }), 413, 'body_too_large'],
      ['{"model":"gpt-test"}', 404, 'not_found', 'application/json'],
    ];
    for (const [body, status, c, type] of cases) {
      const r = c === 'not_found' ? await post(body, type, '/v1/files') : await post(body, type);
      assert.equal(r.status, status, `${String(body).slice(0, 60)} → ${r.body}`);
      assert.equal(code(r.body), c);
    }
    assert.equal((await request(`${g.url}/v1/chat/completions`, { headers: bearer(jwt) })).status, 405);
    assert.equal(up.calls.length, before, 'nothing was forwarded');
  });

  it('a model listing goes through with the identity’s credential', async () => {
    const jwt = await token('agent-a');
    const list = await openai(jwt).models.list();
    assert.equal(list.data[0]?.id, 'gpt-test');
    assert.equal(up.calls.at(-1)?.headers.authorization, `Bearer ${SECRETS.agentA}`);
  });

  it('credential files rotate on reload', async () => {
    const jwt = await token('agent-a');
    const rotated = 'sk-agent-a-rotated-51d0';
    writeFileSync(credA, `${rotated}\n`, { mode: 0o600 });
    try {
      const r = await g.gw.reload('test');
      assert.equal(r.ok, true, r.error);
      await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [] });
      assert.equal(up.calls.at(-1)?.headers.authorization, `Bearer ${rotated}`);
    } finally {
      writeFileSync(credA, `${SECRETS.agentA}\n`, { mode: 0o600 });
      assert.equal((await g.gw.reload('test')).ok, true);
    }
  });

  it('an answer of unexpected shape is passed through, charged by estimate and counted as usage_unknown', async () => {
    const jwt = await token('agent-a');
    up.plan.shape = 'unexpected';
    try {
      const body = '{"model":"gpt-test","max_tokens":10,"messages":[]}';
      const r = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'Hello w1 w2 w3 w4 (and no usage anywhere)');
      const line = await eventually(() => lastLine((l) => (l.llm as { usage?: string } | undefined)?.usage === 'estimated'));
      // ⌈request bytes / 4⌉ + ⌈answer bytes / 4⌉ (docs/llm.md#usage).
      assert.deepEqual([(line.llm as { prompt_tokens: number }).prompt_tokens, (line.llm as { completion_tokens: number }).completion_tokens], [Math.ceil(body.length / 4), Math.ceil(r.body.length / 4)]);
      const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      assert.match(metrics, /gatehouse_llm_usage_unknown_total\{site="llm",model="gpt-test",reason="unexpected_shape"\} 1/);
    } finally {
      up.plan.shape = 'normal';
    }
  });

  it('a budget exhausted mid-stream: the running stream finishes and is charged in full; the next call gets 429 with Retry-After and RateLimit', async () => {
    const jwt = await token('agent-tight');
    up.plan.words = 60;
    up.plan.delayMs = 5;
    try {
      const stream = await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [], stream: true, max_tokens: 60 });
      let first = true;
      let n = 0;
      for await (const c of stream) {
        n += c.choices[0]?.delta.content ? 1 : 0;
        if (first) {
          first = false;
          // While it streams, its reservation (prompt estimate + 60) fills the 50-token budget.
          const r = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body: '{"model":"gpt-test","messages":[]}' });
          assert.equal(r.status, 429);
          assert.equal(code(r.body), 'rate_limited');
        }
      }
      assert.equal(n, 60, 'the admitted stream was not cut');
      await eventually(() => lastLine((l) => l.subject === 'agent-tight' && (l.llm as { total_tokens?: number } | undefined)?.total_tokens === 72));
      const r = await request(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { ...bearer(jwt), 'content-type': 'application/json' }, body: '{"model":"gpt-test","messages":[]}' });
      assert.equal(r.status, 429);
      const retry = Number(r.headers['retry-after']);
      assert.ok(retry >= 55 && retry <= 62, `Retry-After ${retry}: the 72 charged tokens leave the minute window`);
      assert.equal(r.headers['ratelimit-policy'], '"identity";q=60;w=60, "tokens_per_minute";q=50;w=60');
      assert.match(String(r.headers.ratelimit), new RegExp(`"tokens_per_minute";r=0;t=${retry}`));
    } finally {
      up.plan.words = 5;
      up.plan.delayMs = 0;
    }
  });

  it('a client that disconnects mid-stream: the upstream stream is stopped, the usage so far still charged and recorded', async () => {
    const jwt = await token('agent-a');
    up.plan.words = 200;
    up.plan.delayMs = 10;
    try {
      const ac = new AbortController();
      const stream = await openai(jwt).chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'write a lot' }], stream: true, max_tokens: 400 }, { signal: ac.signal });
      let got = 0;
      try {
        for await (const c of stream) {
          if (c.choices[0]?.delta.content) got++;
          if (got === 10) ac.abort();
        }
      } catch {
        // The SDK may end the iteration or throw on abort; either way the client is gone.
      }
      assert.ok(got >= 10 && got < 200);
      const line = await eventually(() => lastLine((l) => (l.llm as { usage?: string; streamed?: boolean } | undefined)?.usage === 'estimated' && (l.llm as { streamed: boolean }).streamed));
      const call = line.llm as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      assert.ok(call.completion_tokens >= 10 * 3 / 4 && call.completion_tokens < 200, `completion estimate ${call.completion_tokens} from the text streamed before the client left`);
      assert.ok(call.prompt_tokens > 0);
      await eventually(() => (up.abandoned.length > 0 ? true : undefined));
      const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
      assert.match(metrics, /gatehouse_llm_usage_unknown_total\{site="llm",model="gpt-test",reason="interrupted"\} 1/);
    } finally {
      up.plan.words = 5;
      up.plan.delayMs = 0;
    }
  });

  it('a token revoked between two calls: the second call is refused', async () => {
    const jwt = await token('agent-a');
    const client = openai(jwt);
    await client.chat.completions.create({ model: 'gpt-test', messages: [] });
    const svc = g.gw.identity;
    assert.ok(svc);
    await svc.stores.revocations.add(subjectRevocation(g.gw.config, 'agent-a', undefined, Date.now()));
    await assert.rejects(client.chat.completions.create({ model: 'gpt-test', messages: [] }), (e: unknown) => e instanceof OpenAI.AuthenticationError && (e.error as { code?: string }).code === 'token_revoked');
  });

  it('the Anthropic SDK with the agent JWT as its API key: plain and streamed messages, credential in x-api-key', async () => {
    const jwt = await token('agent-c');
    const client = new Anthropic({ apiKey: jwt, baseURL: g.url.replace('127.0.0.1', 'localhost'), maxRetries: 0 });
    const before = up.calls.length;
    const msg = await client.messages.create({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.content[0]?.type === 'text' ? msg.content[0].text : '', 'Hello w1 w2 w3 w4');
    const seen = up.calls[before];
    assert.equal(seen?.headers['x-api-key'], SECRETS.claude);
    assert.equal(seen?.headers.authorization, undefined);
    assert.ok(!JSON.stringify(seen?.headers).includes(jwt));
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    let text = '';
    for await (const e of stream) if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') text += e.delta.text;
    assert.equal(text, 'Hello w1 w2 w3 w4');
    const line = await eventually(() => lastLine((l) => l.site === 'claude' && (l.llm as { streamed?: boolean } | undefined)?.streamed === true));
    assert.deepEqual([(line.llm as { prompt_tokens: number }).prompt_tokens, (line.llm as { completion_tokens: number }).completion_tokens, (line.llm as { usage: string }).usage], [12, 5, 'reported']);
  });

  it('usage is on the audit record; no credential appears in logs, metrics or audit rows', async () => {
    const metrics = await (await fetch(`${g.adminUrl}/metrics`)).text();
    assert.match(metrics, /gatehouse_llm_tokens_total\{site="llm",model="gpt-test",kind="prompt"\} \d+/);
    assert.match(metrics, /gatehouse_llm_calls_total\{site="claude",model="claude-test",usage="reported"\} 2/);
    await new Promise((r) => setTimeout(r, 300)); // async audit: flush_interval 10 ms
    const db = new Database(join(audit.stateDir, 'audit.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT data FROM audit_records').all() as Array<{ data: string }>;
    db.close();
    const llmRows = rows.map((r) => JSON.parse(r.data) as { llm?: { total_tokens: number; model: string } }).filter((r) => r.llm !== undefined);
    assert.ok(llmRows.some((r) => r.llm?.model === 'claude-test' && r.llm.total_tokens === 17));
    const everything = [JSON.stringify(g.logs), metrics, rows.map((r) => r.data).join('\n'), readFileSync(g.file, 'utf8')].join('\n');
    for (const s of Object.values(SECRETS)) assert.ok(!everything.includes(s), 'a credential leaked into logs, metrics, audit or config');
  });
});


describe('LLM route with a sync audit trail', () => {
  it('the decision record is written before the answer; the call’s final record carries its usage', async () => {
    const up = await startLlmUpstream();
    const key = makeKey(keyDir(), 'k1', 'ES256');
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-llm-sync-'));
    const audit = auditFiles();
    const g = await startGateway(
      baseConfig(up.url, {}, {
        auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: key.kid, file: key.file }] }] },
        identities: { unknown_identity: 'allow' },
        state: { dir: audit.stateDir },
        audit: audit.block({ mode: 'sync' }),
        sites: [{ id: 'llm', hosts: ['127.0.0.1'], upstream: { urls: [up.url] }, auth: {}, llm: { models: { 'gpt-test': {} }, grants: [{ id: 'all', models: ['*'] }], credentials: { subjects: { 'agent-a': secretFile(dir, 'a.key', SECRETS.agentA) } } } }],
      }),
    );
    try {
      const jwt = await sign(key, { sub: 'agent-a', type: 'agent' });
      const r = await new OpenAI({ apiKey: jwt, baseURL: `${g.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: 'gpt-test', messages: [] }).withResponse();
      const rid = r.response.headers.get('x-request-id');
      const rows = await eventually(() => {
        const db = new Database(join(audit.stateDir, 'audit.sqlite'), { readonly: true });
        const found = (db.prepare('SELECT data FROM audit_records').all() as Array<{ data: string }>).map((x) => JSON.parse(x.data) as { request_id: string; llm?: { total_tokens: number }; bytes_out: number | null }).filter((x) => x.request_id === rid);
        db.close();
        return found.length === 2 ? found : undefined;
      });
      assert.equal(rows[0]?.llm, undefined, 'decision record: usage not known yet');
      assert.equal(rows[0]?.bytes_out, null);
      assert.equal(rows[1]?.llm?.total_tokens, 17);
    } finally {
      await g.close();
      await up.close();
    }
  });
});
