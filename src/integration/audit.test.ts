/**
 * The audit trail end to end: a real gateway in front of a real upstream records every
 * exchange — proxied, refused (429), closed for an unknown host, dropped by the IP filter (aggregated) — the
 * admin API queries it, `gatehouse audit verify` checks the store and `audit export`
 * writes a file a third party verifies with the public key only.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { auditFiles, type AuditFiles } from '../audit/test-files.js';
import type { ChainedRecord } from '../audit/record.js';
import { baseConfig, BIN, rawExchange, request, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';

const run = promisify(execFile);
const TOKEN = 'admin-token-for-audit-tests-0123456789';

async function records(gw: TestGateway, query = ''): Promise<ChainedRecord[]> {
  await gw.gw.audit?.writer.flush();
  const r = await request(`${gw.adminUrl}/audit/records?limit=1000${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { records: ChainedRecord[] }).records;
}

describe('audit trail (async mode, SQLite)', () => {
  let up: Upstream;
  let gw: TestGateway;
  let files: AuditFiles;
  let configFile: string;

  before(async () => {
    up = await startUpstream();
    files = auditFiles();
    const tokenFile = join(files.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    gw = await startGateway(
      baseConfig(
        up.url,
        { rate_limits: [{ id: 'login', limit: 1, window: '1m', paths: ['/login'] }], ip_filter: { deny: ['10.0.0.0/8'] } },
        {
          admin: { listen: '127.0.0.1:0', token_file: tokenFile },
          // 127.0.0.2 is denied at connection level (the global filter).
          ip_filter: { deny: ['127.0.0.2/32'] },
          state: { dir: files.stateDir },
          audit: files.block(),
        },
      ),
    );
    configFile = gw.file;
  });
  after(async () => {
    await gw?.close();
    await up?.close();
    rmSync(files.dir, { recursive: true, force: true });
  });

  it('records proxied requests and refusals with their decision, stage, rule and fields', async () => {
    const ok = await request(`${gw.url}/hello?x=1`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(ok.status, 200);
    assert.equal((await request(`${gw.url}/login`, { method: 'POST', body: 'a' })).status, 200);
    assert.equal((await request(`${gw.url}/login`, { method: 'POST', body: 'a' })).status, 429);
    // http.unknown_host: close (the default): closed with zero bytes, still recorded.
    await assert.rejects(request(`http://127.0.0.1:${gw.port}/`, { headers: { host: 'unknown.example' } }), /socket hang up|ECONNRESET/);
    // A request the HTTP parser rejects is an exchange too: answered 400 and recorded.
    const garbage = await rawExchange(gw.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n');
    const garbageId = /x-request-id: ([0-9a-f-]+)/i.exec(garbage.bytes.toString())?.[1];
    const all = await records(gw);
    const byId = new Map(all.map((r) => [r.request_id, r]));
    const okRec = byId.get(ok.headers['x-request-id'] as string) as ChainedRecord;
    assert.equal(okRec.decision, 'allowed');
    assert.equal(okRec.status, 200);
    assert.equal(okRec.method, 'GET');
    assert.equal(okRec.path, '/hello');
    assert.equal(okRec.site, 'app');
    assert.equal(okRec.route, '/');
    assert.equal(okRec.peer_ip, '127.0.0.1');
    assert.equal(okRec.client_ip, '127.0.0.1', 'X-Forwarded-For from an untrusted peer is not believed');
    assert.ok((okRec.bytes_out ?? 0) > 0);
    assert.ok((okRec.latency_us ?? 0) > 0);
    assert.equal(okRec.subject, null);
    const limited = all.find((r) => r.status === 429) as ChainedRecord;
    assert.deepEqual([limited.decision, limited.stage, limited.rule, limited.code], ['refused', 'rate_limit', 'login', 'rate_limited']);
    const parserRec = byId.get(garbageId as string) as ChainedRecord;
    assert.deepEqual([parserRec.status, parserRec.decision, parserRec.stage, parserRec.code, parserRec.site], [400, 'refused', 'parser', 'bad_request', null]);
    const misdirected = all.find((r) => r.code === 'misdirected_request') as ChainedRecord;
    assert.deepEqual([misdirected.status, misdirected.decision, misdirected.stage, misdirected.site], [0, 'dropped', 'routing', null]);
    assert.ok(all.some((r) => r.kind === 'restart'));
  });

  it('aggregates connections closed by the IP filter into one record per client and interval', async () => {
    // The connection-level filter: connect from 127.0.0.2.
    const { connect } = await import('node:net');
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((ok) => {
        const s = connect({ port: gw.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        s.on('close', () => ok());
        s.on('error', () => ok());
      });
    }
    await sleep(400);
    const drops = (await records(gw, '&decision=dropped')).filter((r) => r.kind === 'drop_aggregate');
    const conn = drops.find((r) => r.client_ip === '127.0.0.2') as ChainedRecord;
    assert.ok(conn, JSON.stringify(drops));
    assert.equal(conn.count, 3);
    assert.deepEqual([conn.stage, conn.rule, conn.code, conn.status], ['ip_filter', 'deny', 'ip_denied', 0]);
    assert.ok(conn.first_time !== null && conn.first_time <= conn.time);
  });

  it('the admin API filters by decision and time range and reports the stream status', async () => {
    const refused = await records(gw, '&decision=refused');
    assert.ok(refused.length >= 2 && refused.every((r) => r.decision === 'refused'));
    const none = await records(gw, `&to=${encodeURIComponent('2000-01-01T00:00:00Z')}`);
    assert.equal(none.length, 0);
    const bad = await request(`${gw.adminUrl}/audit/records?decision=maybe`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bad.status, 400);
    const unauth = await request(`${gw.adminUrl}/audit/records`);
    assert.equal(unauth.status, 401);
    const st = await request(`${gw.adminUrl}/audit/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const status = JSON.parse(st.body) as { stream: { stream: string; head_seq: number; store_ok: boolean }; accepting: boolean };
    assert.equal(status.stream.store_ok, true);
    assert.equal(status.accepting, true);
    assert.ok(status.stream.head_seq > 3);
    const v = await request(`${gw.adminUrl}/audit/verify`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal((JSON.parse(v.body) as { ok: boolean }).ok, true, v.body);
  });

  it('gatehouse audit verify checks the store; export is verifiable offline with the public key only', async () => {
    await gw.gw.audit?.writer.flush();
    const v = await run(process.execPath, [BIN, 'audit', 'verify', '--config', configFile]);
    assert.match(v.stdout, /OK: 1 stream\(s\) verified/);
    const out = join(files.dir, 'export.jsonl');
    const e = await run(process.execPath, [BIN, 'audit', 'export', '--config', configFile, '--out', out]);
    assert.match(e.stdout, /exported \d+ record\(s\)/);
    const offline = await run(process.execPath, [BIN, 'audit', 'verify', '--export', out, '--public-key', files.publicKey]);
    assert.match(offline.stdout, /MACs not checked/);
    assert.match(offline.stdout, /OK: 1 stream/);
    // Tampering with the export is named.
    const lines = readFileSync(out, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"status":429'));
    lines[i] = (lines[i] as string).replace('"status":429', '"status":200');
    const bad = join(files.dir, 'bad.jsonl');
    writeFileSync(bad, lines.join('\n'));
    const failed = await run(process.execPath, [BIN, 'audit', 'verify', '--export', bad, '--public-key', files.publicKey]).then(
      () => null,
      (err: { code: number; stdout: string }) => err,
    );
    assert.ok(failed !== null, 'verify exits non-zero');
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /modified/);
  });
});

describe('audit proofs from the command line', () => {
  it('audit prove prints an inclusion proof and a consistency proof; audit verify --proof checks them offline with the public key; an altered proof fails', async () => {
    const up = await startUpstream();
    const files = auditFiles();
    const gw = await startGateway(baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: files.block({ checkpoint_records: 20 }) }));
    try {
      for (let i = 0; i < 70; i++) assert.equal((await request(`${gw.url}/p/${i}`)).status, 200);
      await gw.gw.audit?.writer.flush();
      const stream = gw.gw.audit?.writer.stream as string;
      const inc = join(files.dir, 'inclusion.json');
      const p = await run(process.execPath, [BIN, 'audit', 'prove', '--config', gw.file, '--record', `${stream}:7`, '--out', inc]);
      assert.match(p.stdout, /wrote a inclusion proof/);
      const ok = await run(process.execPath, [BIN, 'audit', 'verify', '--proof', inc, '--public-key', files.publicKey]);
      assert.match(ok.stdout, new RegExp(`OK: record ${stream}:7 is in the log under the signed checkpoint at seq \\d+`));
      // Checkpoints fall at batch boundaries: prove from the first one the store holds.
      const cps = (await gw.gw.audit?.store.checkpoints(stream)) ?? [];
      assert.ok(cps.length >= 2, `${cps.length} checkpoints`);
      const firstSeq = Math.min(...cps.map((c) => c.seq));
      const con = join(files.dir, 'consistency.json');
      await run(process.execPath, [BIN, 'audit', 'prove', '--config', gw.file, '--consistency', '--stream', stream, '--from', String(firstSeq), '--out', con]);
      const ok2 = await run(process.execPath, [BIN, 'audit', 'verify', '--proof', con, '--public-key', files.publicKey]);
      assert.match(ok2.stdout, new RegExp(`OK: the signed checkpoint at seq \\d+ extends the one at seq ${firstSeq}`));
      // One hex digit of the record's path changed: the proof fails, exit 1.
      const bad = join(files.dir, 'bad.json');
      writeFileSync(bad, readFileSync(inc, 'utf8').replace('"path": "/p/', '"path": "/q/'));
      const failed = await run(process.execPath, [BIN, 'audit', 'verify', '--proof', bad, '--public-key', files.publicKey]).then(
        () => null,
        (err: { code: number; stdout: string }) => err,
      );
      assert.equal(failed?.code, 1);
      // The gateway writes chain format v2: the record's leaf is recomputed from its content.
      assert.match(failed.stdout, /record 7: its content does not match its leaf/);
    } finally {
      await gw.close();
      await up.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});

describe('audit trail (sync mode, SQLite)', () => {
  it('a response is sent only after its record is durable: every answered request is already in the store', async () => {
    const up = await startUpstream();
    const files = auditFiles();
    // A flush interval far longer than the test: only the sync path can make records durable in time.
    const gw = await startGateway(
      baseConfig(up.url, { rate_limits: [{ id: 'one', limit: 2, window: '1m' }] }, { state: { dir: files.stateDir }, audit: files.block({ mode: 'sync', flush_interval: '10s' }) }),
    );
    try {
      const store = gw.gw.audit?.store;
      assert.ok(store);
      for (let i = 0; i < 3; i++) {
        const r = await request(`${gw.url}/sync/${i}`);
        assert.equal(r.status, i < 2 ? 200 : 429);
        const recs: ChainedRecord[] = await store.query({ limit: 1000 });
        const rec: ChainedRecord | undefined = recs.find((x) => x.request_id === r.headers['x-request-id']);
        assert.ok(rec, `record of request ${i} is durable before its response`);
        assert.equal(rec.status, r.status);
        assert.equal(rec.bytes_out, null, 'sync records are made at decision time');
      }
    } finally {
      await gw.close();
      await up.close();
      rmSync(files.dir, { recursive: true, force: true });
    }
  });
});

describe('audit key rotation through a config reload', () => {
  it('records after the reload carry the new key id; the whole stream verifies with the keyring', async () => {
    const up = await startUpstream();
    const files = auditFiles();
    const config = (keys: unknown[]) => baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: { ...files.block(), keys } });
    const gw = await startGateway(config([{ id: 'k1', file: files.k1 }]));
    try {
      assert.equal((await request(`${gw.url}/before`)).status, 200);
      await gw.gw.audit?.writer.flush();
      gw.write(config([{ id: 'k1', file: files.k1 }, { id: 'k2', file: files.k2, active: true }]));
      assert.equal((await gw.gw.reload('test')).ok, true);
      assert.equal((await request(`${gw.url}/after`)).status, 200);
      await gw.gw.audit?.writer.flush();
      const recs = (await gw.gw.audit?.store.query({ limit: 100 })) ?? [];
      assert.equal(recs.find((r) => r.path === '/before')?.kid, 'k1');
      assert.equal(recs.find((r) => r.path === '/after')?.kid, 'k2');
    } finally {
      await gw.close();
      await up.close();
    }
    const v = await run(process.execPath, [BIN, 'audit', 'verify', '--config', gw.file]);
    assert.match(v.stdout, /OK: 1 stream/);
    rmSync(files.dir, { recursive: true, force: true });
  });
});
