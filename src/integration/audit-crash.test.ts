/**
 * Durability under kill -9, with real gateway processes under load:
 * - sync mode: every response a client received has its record in the store, and the
 *   chain verifies;
 * - async mode: the loss is bounded and detected — the restarted gateway's restart
 *   record names the gap, and every received response without a record lies in it;
 * - two gateways writing one PostgreSQL under load: two streams, both verify.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import postgres from 'postgres';
import { createKeyring, decodeKey } from '../audit/keyring.js';
import { loadPublicKey } from '../audit/checkpoint.js';
import { verifyStore } from '../audit/sources.js';
import { createPostgresAuditStore } from '../audit/store/postgres.js';
import { createSqliteAuditStore } from '../audit/store/sqlite.js';
import type { AuditStore } from '../audit/store/types.js';
import { auditFiles, type AuditFiles } from '../audit/test-files.js';
import type { StreamReport } from '../audit/verify.js';
import { readFileSync } from 'node:fs';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';
import { baseConfig, BIN, sleep, spawnGateway, startUpstream, writeConfig, type Upstream } from '../testing/harness.js';

/** `gatehouse <args>` as a separate process: exit code and output. */
function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

/** Keeps `concurrency` requests in flight until stopped; returns the request ids of every response received. */
function load(port: number, concurrency = 8): { stop(): Promise<string[]>; running(ms: number, atLeast: number): Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const ids: string[] = [];
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = httpRequest({ port, host: '127.0.0.1', path: `/item/${ids.length}`, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const id = res.headers['x-request-id'];
          if (typeof id === 'string') ids.push(id);
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (running) await one();
  });
  return {
    /** At least `ms` of load, and longer (up to 20 s) until `atLeast` responses came back: a loaded machine answers slower. */
    async running(ms, atLeast) {
      const until = Date.now() + 20_000;
      await sleep(ms);
      while (ids.length < atLeast && Date.now() < until) await sleep(100);
    },
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return ids;
    },
  };
}

function keysOf(files: AuditFiles) {
  return {
    keyring: createKeyring(new Map([['k1', decodeKey(readFileSync(files.k1, 'utf8'))]]), 'k1'),
    publicKey: loadPublicKey(readFileSync(files.publicKey, 'utf8')),
  };
}

async function requestIds(store: AuditStore): Promise<Set<string>> {
  const out = new Set<string>();
  for (const s of await store.streams()) {
    let after = 0;
    for (;;) {
      const rows = await store.readRaw(s, after, 10_000);
      for (const r of rows) {
        const rec = JSON.parse(r.data) as { request_id: string | null };
        if (rec.request_id !== null) out.add(rec.request_id);
      }
      if (rows.length < 10_000) break;
      after = (rows[rows.length - 1] as { id: number }).id;
    }
  }
  return out;
}

describe('audit durability under kill -9', () => {
  let up: Upstream;
  const cleanup: Array<() => void> = [];
  after(async () => {
    await up?.close();
    for (const c of cleanup) c();
  });

  it('sync mode: every response a client received has its record, and the chain verifies', async (t) => {
    up ??= await startUpstream();
    const files = auditFiles();
    cleanup.push(() => rmSync(files.dir, { recursive: true, force: true }));
    const config = baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: files.block({ mode: 'sync' }) });
    const g = await spawnGateway(config);
    const l = load(g.port);
    await l.running(1500, 60);
    g.child.kill('SIGKILL');
    await g.stop();
    const ids = await l.stop();
    assert.ok(ids.length > 50, `load ran (${ids.length} responses)`);
    t.diagnostic(`${ids.length} responses before the kill`);
    // Before any restart: nothing may have been lost, and verification says so.
    const before = await runCli(['audit', 'verify', '--config', g.file]);
    assert.equal(before.code, 0, before.stdout + before.stderr);
    const store = createSqliteAuditStore(join(files.stateDir, 'audit.sqlite'));
    try {
      const have = await requestIds(store);
      const missing = ids.filter((id) => !have.has(id));
      assert.deepEqual(missing, [], `${missing.length} of ${ids.length} answered requests have no record`);
      const reps = await verifyStore(store, keysOf(files));
      assert.deepEqual(reps.flatMap((r) => r.problems), []);
    } finally {
      await store.close();
    }
    // The restart declares exactly what may have been lost: nothing (no seq reserved ahead).
    const g2 = await spawnGateway(config);
    assert.equal(await g2.stop('SIGTERM'), 0);
    const after2 = createSqliteAuditStore(join(files.stateDir, 'audit.sqlite'));
    try {
      const reps = await verifyStore(after2, keysOf(files));
      assert.deepEqual(reps.flatMap((r) => r.problems), [], 'no gap after a sync-mode crash');
      const restarts: Array<{ count: number; lost_to: number | null }> = [];
      for (let after = 0; ; ) {
        const rows = await after2.readRaw(reps[0]?.stream as string, after, 10_000);
        for (const r of rows) if (r.data.includes('"kind":"restart"')) restarts.push(JSON.parse(r.data) as { count: number; lost_to: number | null });
        if (rows.length < 10_000) break;
        after = (rows[rows.length - 1] as { id: number }).id;
      }
      assert.equal(restarts.length, 2);
      assert.deepEqual(
        restarts.map((r) => [r.count, r.lost_to]),
        [
          [0, null],
          [0, null],
        ],
      );
    } finally {
      await after2.close();
    }
  });

  it('async mode: the loss is bounded by the reservation and named as a gap after the restart', async (t) => {
    up ??= await startUpstream();
    const files = auditFiles();
    cleanup.push(() => rmSync(files.dir, { recursive: true, force: true }));
    const config = baseConfig(up.url, {}, { state: { dir: files.stateDir }, audit: files.block({ mode: 'async', flush_interval: '200ms' }) });
    const g = await spawnGateway(config);
    const l = load(g.port);
    await l.running(1500, 60);
    g.child.kill('SIGKILL');
    await g.stop();
    const ids = await l.stop();
    assert.ok(ids.length > 50, `load ran (${ids.length} responses)`);
    // Before any restart, verification itself names the window the dead writer reserved.
    const before = await runCli(['audit', 'verify', '--config', g.file]);
    assert.equal(before.code, 1, before.stdout + before.stderr);
    assert.match(before.stdout, /gap: seqs \d+\.\.\d+ were reserved by a writer that did not stop cleanly \(pid \d+ is not running\)/);
    // The restart writes the restart record naming the range that may have been lost.
    const g2 = await spawnGateway(config);
    assert.equal(await g2.stop('SIGTERM'), 0);
    const store = createSqliteAuditStore(join(files.stateDir, 'audit.sqlite'));
    try {
      const reps: StreamReport[] = await verifyStore(store, keysOf(files));
      const problems = reps.flatMap((r) => r.problems);
      const have = await requestIds(store);
      const missing = ids.filter((id) => !have.has(id));
      t.diagnostic(`${ids.length} responses, ${missing.length} without a record; problems: ${JSON.stringify(problems)}`);
      if (missing.length > 0) {
        assert.equal(problems.length, 1, JSON.stringify(problems));
        assert.equal(problems[0]?.kind, 'gap');
        const declared = Number(/at most (\d+) records/.exec(problems[0]?.detail ?? '')?.[1]);
        assert.ok(missing.length <= declared, `${missing.length} lost ≤ ${declared} declared`);
      } else {
        // Nothing was in flight at the kill; a gap may still be declared (reserved, unused seqs).
        assert.ok(problems.every((p) => p.kind === 'gap'), JSON.stringify(problems));
      }
    } finally {
      await store.close();
    }
  });

  it('two gateway processes write one PostgreSQL under load as the writer role: one stream each, both verify as the reader role', async (t) => {
    if (!(await needPostgres(t))) return;
    up ??= await startUpstream();
    const schema = `audit_i_${randomBytes(6).toString('hex')}`;
    const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    const db = new URL(POSTGRES_URL).pathname.slice(1);
    const fa = auditFiles();
    const fb = auditFiles();
    cleanup.push(() => rmSync(fa.dir, { recursive: true, force: true }), () => rmSync(fb.dir, { recursive: true, force: true }));
    // Login roles with exactly the documented grants (docs/audit.md, "Roles").
    const owner = `${schema}_owner`;
    const gwRole = `${schema}_gw`;
    const roRole = `${schema}_ro`;
    const urlAs = (user: string) => {
      const u = new URL(POSTGRES_URL);
      u.username = user;
      return u.toString();
    };
    await admin.unsafe(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
    await admin.unsafe(`GRANT CREATE ON DATABASE ${db} TO ${owner}`);
    try {
      // Same keys on both instances (one operator), separate state dirs (separate streams).
      const block = fa.block({ store: 'postgres' });
      const configAs = (user: string, stateDir: string) => baseConfig(up.url, {}, { state: { dir: stateDir, postgres: { url: urlAs(user), schema } }, audit: block });
      // The gateway refuses an unmigrated schema with a message naming the command.
      const early = await spawnGateway(configAs(owner, fa.stateDir)).then(
        () => null,
        (err: Error) => err,
      );
      assert.match(String(early?.message), /gatehouse audit migrate/);
      const migrate = await runCli(['audit', 'migrate', '--config', writeConfig(configAs(owner, fa.stateDir))]);
      assert.equal(migrate.code, 0, migrate.stderr);
      await admin.unsafe(`CREATE ROLE ${gwRole} LOGIN IN ROLE ${schema}_audit_writer`);
      await admin.unsafe(`CREATE ROLE ${roRole} LOGIN IN ROLE ${schema}_audit_reader`);
      const a = await spawnGateway(configAs(gwRole, fa.stateDir));
      const b = await spawnGateway(configAs(gwRole, fb.stateDir));
      const la = load(a.port, 4);
      const lb = load(b.port, 4);
      await sleep(1500);
      const ids = [...(await la.stop()), ...(await lb.stop())];
      assert.equal(await a.stop('SIGTERM'), 0);
      assert.equal(await b.stop('SIGTERM'), 0);
      const v = await runCli(['audit', 'verify', '--config', writeConfig(configAs(roRole, fa.stateDir))]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /OK: 2 stream\(s\) verified/);
      const store = createPostgresAuditStore(postgres(urlAs(roRole), { max: 2, onnotice: () => undefined }), schema);
      try {
        await store.init();
        const reps = await verifyStore(store, keysOf(fa));
        assert.equal(reps.length, 2);
        assert.deepEqual(reps.flatMap((r) => r.problems), []);
        assert.ok(reps.every((r) => r.records > 10 && r.latestCheckpointSeq === r.lastSeq));
        const have = await requestIds(store);
        assert.deepEqual(ids.filter((id) => !have.has(id)), []);
      } finally {
        await store.close();
      }
    } finally {
      await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const r of [gwRole, roRole, `${schema}_audit_writer`, `${schema}_audit_reader`, `${schema}_audit_pruner`]) await admin.unsafe(`DROP ROLE IF EXISTS ${r}`);
      await admin.unsafe(`REVOKE CREATE ON DATABASE ${db} FROM ${owner}`);
      await admin.unsafe(`DROP OWNED BY ${owner}`).catch(() => undefined);
      await admin.unsafe(`DROP ROLE IF EXISTS ${owner}`);
      await admin.end({ timeout: 2 });
    }
  });
});
