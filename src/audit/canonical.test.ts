/**
 * The canonical-form test vectors of docs/audit.md ("Test vectors"). The expected values
 * are literals copied from the docs (and reproduced independently with Python's hashlib
 * and hmac); the code must compute exactly them.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import test from 'node:test';
import fc from 'fast-check';
import { canonical, genesis, mac, recordHash } from './canonical.js';
import { leafHex, macKey, nodeHex, RecordHasher } from './chain-hash.js';
import { checkpointCanonical, createSigner, verifyCheckpoint } from './checkpoint.js';
import { leafHash, merkleRoot, MerkleAccumulator, nodeHash } from './merkle.js';
import { CANONICAL_FIELDS, emptyBody, type AuditBody, type ChainFields } from './record.js';

const KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const STREAM = 'gw-test';

function record1(): AuditBody & ChainFields {
  const b = emptyBody('exchange', '2026-01-02T03:04:05.678Z');
  Object.assign(b, { request_id: 'req-1', instance: 'host-a', site: 'app', route: '/', client_ip: '192.0.2.7', peer_ip: '127.0.0.1', subject: 'agent-7', identity_type: 'agent', domain: 'billing', agent: 'agent-7', method: 'GET', path: '/v1/café "x"', status: 200, decision: 'allowed', stage: 'proxy', latency_us: 1234, bytes_in: 0, bytes_out: 512 });
  return { ...b, v: 1, stream: STREAM, seq: 1, kid: 'k1' };
}

function record2(): AuditBody & ChainFields {
  const b = emptyBody('exchange', '2026-01-02T03:04:06.000Z');
  Object.assign(b, { request_id: 'req-2', instance: 'host-a', site: 'app', route: '/', client_ip: '198.51.100.1', peer_ip: '198.51.100.1', method: 'POST', path: '/login', status: 429, decision: 'refused', stage: 'rate_limit', rule: 'login', code: 'rate_limited', latency_us: 87, bytes_in: 0, bytes_out: 120 });
  return { ...b, v: 1, stream: STREAM, seq: 2, kid: 'k1' };
}

const V = {
  genesis: 'e1cffb7f3632a72be640a26e4e0929b5f94bcec134e395131f7ea5d06158a835',
  canon1:
    '{"agent":"agent-7","bytes_in":0,"bytes_out":512,"client_ip":"192.0.2.7","code":null,"count":1,"decision":"allowed","domain":"billing","first_time":null,"identity_type":"agent","instance":"host-a","kid":"k1","kind":"exchange","latency_us":1234,"lost_to":null,"method":"GET","path":"/v1/café \\"x\\"","peer_ip":"127.0.0.1","policies":null,"request_id":"req-1","role":null,"route":"/","rule":null,"seq":1,"site":"app","stage":"proxy","status":200,"stream":"gw-test","subject":"agent-7","time":"2026-01-02T03:04:05.678Z","token_id_hash":null,"v":1}',
  mac1: '8f5a4cc67965c2a5386a9971e77e5a7cb532b5c07ef390b9c86af400f32b687d',
  hash1: '065245100c414360095f7881e3efcacf3f49cc8e7d53206df6a273662ca8da02',
  canon2:
    '{"agent":null,"bytes_in":0,"bytes_out":120,"client_ip":"198.51.100.1","code":"rate_limited","count":1,"decision":"refused","domain":null,"first_time":null,"identity_type":null,"instance":"host-a","kid":"k1","kind":"exchange","latency_us":87,"lost_to":null,"method":"POST","path":"/login","peer_ip":"198.51.100.1","policies":null,"request_id":"req-2","role":null,"route":"/","rule":"login","seq":2,"site":"app","stage":"rate_limit","status":429,"stream":"gw-test","subject":null,"time":"2026-01-02T03:04:06.000Z","token_id_hash":null,"v":1}',
  mac2: '953d5fbe17ca103b643a213a2947b47781ab6c2da7929ea3904bc9cb9df397f7',
  hash2: '166896f47497ed2515cb86fda9f5e644da33ce706348ed7fcc4d01b13ea88866',
  root1: '2249e4eb782278e155b0158d17698c8193d2b531926763fcd96ae4724418aa56',
  root2: '598ac9a9fe30803a919f57659de1d23902a0d85bea8b6fe5d5f481b8f26f253b',
  cpKeyId: 'fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889',
  cpSignature: 'rJGBr5J7Ncl9af8BL57JT7p1y0U38CH5C3fSRK7bFTjeBgAmgym0_nodXEIDrlgK3S_Ark0B1WVCZXHzluFvBA',
  cpPublicPem: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n',
};

test('genesis, canonical form, MAC and hash reproduce the documented vectors', () => {
  const g = genesis(STREAM);
  assert.equal(g.toString('hex'), V.genesis);
  const c1 = canonical(record1());
  assert.equal(c1, V.canon1);
  const m1 = mac(KEY, g, c1);
  assert.equal(m1.toString('hex'), V.mac1);
  const h1 = recordHash(g, c1, m1);
  assert.equal(h1.toString('hex'), V.hash1);
  const c2 = canonical(record2());
  assert.equal(c2, V.canon2);
  const m2 = mac(KEY, h1, c2);
  assert.equal(m2.toString('hex'), V.mac2);
  assert.equal(recordHash(h1, c2, m2).toString('hex'), V.hash2);
});

test('the hex fast path (chain-hash.ts) reproduces the documented vectors', () => {
  const hs = new RecordHasher();
  const k = macKey(KEY);
  hs.load(V.genesis, V.canon1);
  assert.equal(hs.mac(k), V.mac1);
  assert.equal(hs.hash(V.mac1), V.hash1);
  hs.load(V.hash1, V.canon2);
  assert.equal(hs.hash(V.mac2), V.hash2);
  assert.equal(hs.mac(k), V.mac2);
  const acc = new MerkleAccumulator();
  acc.push(V.hash1);
  assert.equal(acc.rootHex(), V.root1);
  acc.push(V.hash2);
  assert.equal(acc.rootHex(), V.root2);
});

test('the hex fast path equals createHmac / the Buffer reference for any key, prev and record text', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.string({ unit: 'binary', maxLength: 3000 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (key, prev, text, other) => {
      const K = Buffer.from(key);
      const P = Buffer.from(prev);
      const O = Buffer.from(other);
      const hs = new RecordHasher();
      hs.load(P.toString('hex'), text);
      const m = mac(K, P, text);
      assert.equal(hs.mac(macKey(K)), m.toString('hex'));
      assert.equal(hs.hash(m.toString('hex')), recordHash(P, text, m).toString('hex'));
      assert.equal(leafHex(P.toString('hex')), leafHash(P).toString('hex'));
      assert.equal(nodeHex(P.toString('hex'), O.toString('hex')), nodeHash(P, O).toString('hex'));
    }),
    { numRuns: 300 },
  );
});

test('canonical form equals RFC 8785 for the record domain: keys sorted, JSON.stringify of the sorted object', () => {
  const sorted = (o: Record<string, unknown>) => JSON.stringify(Object.fromEntries(CANONICAL_FIELDS.map((f) => [f, o[f]])));
  assert.deepEqual([...CANONICAL_FIELDS], [...CANONICAL_FIELDS].sort());
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.option(fc.array(fc.string()), { nil: null }), (s, n, pol) => {
      const r = { ...record1(), path: s, latency_us: n, policies: pol };
      assert.equal(canonical(r), sorted(r as unknown as Record<string, unknown>));
    }),
  );
});

test('canonical strings are escaped exactly as JSON.stringify does, whichever path a string takes', () => {
  const samples = ['plain /path?x=1', 'quote"', 'back\\slash', 'nl\n tab\t nul\u0000 us\u001f', 'del\u007f', 'ls\u2028 ps\u2029', 'pair \ud83d\ude00', 'lone \ud800 x', 'lone end \udfff', 'café ü 中文', ''];
  for (const p of samples) {
    const r = { ...record1(), path: p };
    assert.equal(canonical(r), JSON.stringify(Object.fromEntries(CANONICAL_FIELDS.map((f) => [f, (r as unknown as Record<string, unknown>)[f]]))), JSON.stringify(p));
  }
});

test('canonical form refuses floats and non-string values', () => {
  assert.throws(() => canonical({ ...record1(), latency_us: 1.5 }), TypeError);
  assert.throws(() => canonical({ ...record1(), status: Number.NaN }), TypeError);
});

test('Merkle roots: documented vectors and the incremental accumulator equals the RFC 9162 recursion', () => {
  const h1 = Buffer.from(V.hash1, 'hex');
  const h2 = Buffer.from(V.hash2, 'hex');
  assert.equal(merkleRoot([h1]).toString('hex'), V.root1);
  assert.equal(merkleRoot([h1, h2]).toString('hex'), V.root2);
  assert.equal(merkleRoot([]).toString('hex'), createHash('sha256').digest('hex'));
  const leaves: Buffer[] = [];
  const acc = new MerkleAccumulator();
  for (let i = 0; i < 70; i++) {
    const e = createHash('sha256').update(String(i)).digest();
    leaves.push(e);
    acc.push(e);
    assert.equal(acc.root().toString('hex'), merkleRoot(leaves).toString('hex'), `n=${i + 1}`);
    if (i === 33) {
      const resumed = MerkleAccumulator.from(JSON.parse(JSON.stringify(acc.state())) as ReturnType<MerkleAccumulator['state']>);
      assert.equal(resumed.root().toString('hex'), acc.root().toString('hex'));
    }
  }
});

test('checkpoint signature vector (Ed25519 seed 0x07 × 32) verifies with the documented public key only', () => {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.alloc(32, 7)]);
  const signer = createSigner(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
  assert.equal(signer.keyId, V.cpKeyId);
  const cp = signer.sign({ stream: STREAM, seq: 2, head_hash: V.hash2, merkle_root: V.root2, time: '2026-01-02T03:04:07.000Z' });
  assert.equal(cp.signature, V.cpSignature);
  assert.equal(
    checkpointCanonical(cp),
    `{"head_hash":"${V.hash2}","key_id":"${V.cpKeyId}","merkle_root":"${V.root2}","seq":2,"stream":"gw-test","time":"2026-01-02T03:04:07.000Z","v":1}`,
  );
  const pub = createPublicKey(V.cpPublicPem);
  assert.equal(verifyCheckpoint(cp, pub), true);
  assert.equal(verifyCheckpoint({ ...cp, seq: 3 }, pub), false);
});
