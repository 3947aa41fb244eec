/**
 * The chain v2 test vectors of docs/audit.md ("Test vectors", v2): three records in two
 * batches under HMAC key k1 = 00 01 … 1f, stream gw-test. The expected values are literals
 * copied from the docs (and reproduced independently with Python's hashlib and hmac from
 * the formulas alone); the code must compute exactly them, and the verifier must accept
 * the stored forms and the checkpoint.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import test from 'node:test';
import { canonical, genesis } from './canonical.js';
import { macKey } from './chain-hash.js';
import { createSigner } from './checkpoint.js';
import { createKeyring } from './keyring.js';
import { MerkleAccumulator } from './merkle.js';
import { emptyBody, type AuditBody, type ChainFields } from './record.js';
import { LeafHasher, rootOfLeaves, sealBatch, sealOf, storedV2 } from './v2.js';
import { verifyStream } from './verify.js';

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const S = 'gw-test';

function rec(seq: number, time: string, fields: Partial<AuditBody>): AuditBody & ChainFields {
  const b = emptyBody('exchange', time);
  Object.assign(b, fields);
  return { ...b, v: 2, stream: S, seq, kid: 'k1' };
}

const R1 = rec(1, '2026-01-02T03:04:05.678Z', { request_id: 'req-1', instance: 'host-a', site: 'app', route: '/', client_ip: '192.0.2.7', peer_ip: '127.0.0.1', subject: 'agent-7', identity_type: 'agent', domain: 'billing', agent: 'agent-7', method: 'GET', path: '/v1/café "x"', status: 200, decision: 'allowed', stage: 'proxy', latency_us: 1234, bytes_in: 0, bytes_out: 512 });
const R2 = rec(2, '2026-01-02T03:04:06.000Z', { request_id: 'req-2', instance: 'host-a', site: 'app', route: '/', client_ip: '198.51.100.1', peer_ip: '198.51.100.1', method: 'POST', path: '/login', status: 429, decision: 'refused', stage: 'rate_limit', rule: 'login', code: 'rate_limited', latency_us: 87, bytes_in: 0, bytes_out: 120 });
const R3 = rec(3, '2026-01-02T03:04:07.000Z', { request_id: 'req-3', instance: 'host-a', site: 'app', route: '/', client_ip: '192.0.2.7', peer_ip: '127.0.0.1', method: 'GET', path: '/health', status: 200, decision: 'allowed', stage: 'proxy', latency_us: 40, bytes_in: 0, bytes_out: 2 });

const V = {
  canon1:
    '{"agent":"agent-7","bytes_in":0,"bytes_out":512,"client_ip":"192.0.2.7","code":null,"count":1,"decision":"allowed","domain":"billing","first_time":null,"identity_type":"agent","instance":"host-a","kid":"k1","kind":"exchange","latency_us":1234,"lost_to":null,"method":"GET","path":"/v1/café \\"x\\"","peer_ip":"127.0.0.1","policies":null,"request_id":"req-1","role":null,"route":"/","rule":null,"seq":1,"site":"app","stage":"proxy","status":200,"stream":"gw-test","subject":"agent-7","time":"2026-01-02T03:04:05.678Z","token_id_hash":null,"v":2}',
  canon2:
    '{"agent":null,"bytes_in":0,"bytes_out":120,"client_ip":"198.51.100.1","code":"rate_limited","count":1,"decision":"refused","domain":null,"first_time":null,"identity_type":null,"instance":"host-a","kid":"k1","kind":"exchange","latency_us":87,"lost_to":null,"method":"POST","path":"/login","peer_ip":"198.51.100.1","policies":null,"request_id":"req-2","role":null,"route":"/","rule":"login","seq":2,"site":"app","stage":"rate_limit","status":429,"stream":"gw-test","subject":null,"time":"2026-01-02T03:04:06.000Z","token_id_hash":null,"v":2}',
  canon3:
    '{"agent":null,"bytes_in":0,"bytes_out":2,"client_ip":"192.0.2.7","code":null,"count":1,"decision":"allowed","domain":null,"first_time":null,"identity_type":null,"instance":"host-a","kid":"k1","kind":"exchange","latency_us":40,"lost_to":null,"method":"GET","path":"/health","peer_ip":"127.0.0.1","policies":null,"request_id":"req-3","role":null,"route":"/","rule":null,"seq":3,"site":"app","stage":"proxy","status":200,"stream":"gw-test","subject":null,"time":"2026-01-02T03:04:07.000Z","token_id_hash":null,"v":2}',
  leaf1: '5afcae03655a99670066b15365bea5fe311f5d672c06190f067b2825942d5989',
  leaf2: '365a7b36352380a58cb88fd2cfd4c86aa2dbfeb93af69830ed3fb7e159ef45d3',
  leaf3: '83abae35d8ab7b9e65bdd3a2cdf61ea987e8655c33052cbc7466ecabc4440489',
  genesis: 'e1cffb7f3632a72be640a26e4e0929b5f94bcec134e395131f7ea5d06158a835',
  root12: 'bd82fa4057bea48be0b3cc32030a45d4d89f13586025ca3d6e2251a9c9a15f77',
  seal12: '554c9754a8d046a6bffc36a5b95b7213080e340755869bc1f8a81c0cae3b84d0',
  seal3: '949ec64d7dabe20f6d564e8b2025e0815242934a3058283782868b7e060e7c01',
  mth3: '160ca3140c0d2daa032b3fc4640da2e6e198f8164d5da8a48ebeedac98e02f3d',
  cpSignature: 'geaFvI2zuZlZbVd5ejrFuG8aJoB8_RWFEt9xvs5aVfcQ_olEoKce14SW-KvNQFwqYihU0lnZhzFnftwaxxSDCg',
};

test('v2 leaves, batch roots, seals and the stream Merkle root reproduce the documented vectors', () => {
  assert.equal(canonical(R1), V.canon1);
  assert.equal(canonical(R2), V.canon2);
  assert.equal(canonical(R3), V.canon3);
  const h = new LeafHasher();
  assert.deepEqual([V.canon1, V.canon2, V.canon3].map((c) => h.leaf(c)), [V.leaf1, V.leaf2, V.leaf3]);
  assert.equal(genesis(S).toString('hex'), V.genesis);
  const k = macKey(KEY);
  // Batch 1..2 over the genesis; batch 3..3 over the first seal (a one-record batch's root is its leaf).
  assert.equal(rootOfLeaves([V.leaf1, V.leaf2]), V.root12);
  assert.equal(sealOf(k, V.genesis, 1, 2, V.root12), V.seal12);
  assert.equal(rootOfLeaves([V.leaf3]), V.leaf3);
  assert.equal(sealOf(k, V.seal12, 3, 3, V.leaf3), V.seal3);
  const m = new MerkleAccumulator();
  for (const l of [V.leaf1, V.leaf2]) m.pushLeaf(l);
  assert.equal(m.rootHex(), V.root12);
  m.pushLeaf(V.leaf3);
  assert.equal(m.rootHex(), V.mth3);
  // The reference sealer gives the same, and the stored forms of the docs.
  const b1 = sealBatch([V.canon1, V.canon2], 1, V.genesis, k);
  const b2 = sealBatch([V.canon3], 3, b1.seal, k);
  assert.deepEqual([b1.seal, b2.seal], [V.seal12, V.seal3]);
  assert.equal(b1.data[0], `${V.canon1.slice(0, -1)},"leaf":"${V.leaf1}"}`);
  assert.equal(b1.data[1], `${V.canon2.slice(0, -1)},"leaf":"${V.leaf2}","seal":"${V.seal12}","seal_first":1}`);
  assert.equal(b2.data[0], storedV2(V.canon3, V.leaf3, { first: 3, seal: V.seal3 }));
});

test('the v2 checkpoint vector signs head_hash = the last seal and the Merkle root over the leaves; the verifier accepts it all', async () => {
  const seed = Buffer.alloc(32, 7);
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  const signer = createSigner(priv);
  const cp = signer.sign({ stream: S, seq: 3, head_hash: V.seal3, merkle_root: V.mth3, time: '2026-01-02T03:04:08.000Z' });
  assert.equal(cp.signature, V.cpSignature);
  const k = macKey(KEY);
  const data = [...sealBatch([V.canon1, V.canon2], 1, V.genesis, k).data, ...sealBatch([V.canon3], 3, V.seal12, k).data];
  const rep = await verifyStream(S, data, [cp], { keyring: createKeyring(new Map([['k1', KEY]]), 'k1'), publicKey: signer.publicKey });
  assert.deepEqual(rep.problems, []);
  assert.equal(rep.end?.hash, V.seal3);
});
