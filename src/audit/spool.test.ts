/**
 * The spool keeps each record's stored form byte for byte (v1 and v2), and reads a spool
 * an older gatehouse left (v1 records as objects) back to the same store records.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { recordData, v1StoreRecords } from './chain.js';
import { Spool } from './spool.js';
import { buildChain, HMAC_K1, keyring, testSigner } from './test-support.js';
import { buildV2Batch } from './test-v2.js';
import type { ChainedRecord } from './record.js';

const K = keyring({ k1: HMAC_K1 }, 'k1');
const S = 'gw-spool';

test('a spooled batch reads back as the same store records, byte for byte: v1, then v2', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spool = new Spool(join(dir, 'spool.jsonl'));
  const { records, checkpoints } = buildChain(S, 4, K, testSigner(), [4]);
  const v1 = v1StoreRecords(records);
  const v2 = buildV2Batch(S, 5, 3, (records[3] as ChainedRecord).hash, K).records;
  spool.append({ records: v1, checkpoints });
  spool.append({ records: v2, checkpoints: [] });
  const back = new Spool(spool.file).read();
  assert.equal(back.length, 2);
  assert.deepEqual(back[0]?.records, v1);
  assert.deepEqual(back[0]?.checkpoints, JSON.parse(JSON.stringify(checkpoints)));
  assert.deepEqual(back[1]?.records, v2);
});

test('a spool line an older gatehouse wrote (v1 records as objects) reads back to the records it would have stored', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'spool.jsonl');
  const { records } = buildChain(S, 3, K, testSigner(), []);
  appendFileSync(file, `{"records":[${records.map(recordData).join(',')}],"checkpoints":[]}\n`);
  assert.deepEqual(new Spool(file).read()[0]?.records, v1StoreRecords(records));
});

test('a torn last line (a crash mid-write) is ignored', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spool = new Spool(join(dir, 'spool.jsonl'));
  spool.append({ records: buildV2Batch(S, 1, 2, 'a'.repeat(64), K).records, checkpoints: [] });
  appendFileSync(spool.file, '{"records":["{\\"agent');
  assert.equal(new Spool(spool.file).read().length, 1);
});
