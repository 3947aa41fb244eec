/**
 * Signed checkpoints. A checkpoint commits to a stream's state at `seq`: the head record
 * hash and the RFC 9162 Merkle root over the hashes of records 1..seq.
 *
 *   message   = "gatehouse-audit-v1:checkpoint:" ‖ canonical checkpoint
 *   canonical = {"head_hash":…,"key_id":…,"merkle_root":…,"seq":…,"stream":…,"time":…,"v":1}
 *               (keys in this order, no whitespace; hex lowercase; time RFC 3339 UTC ms)
 *   signature = Ed25519(private key, message), base64url without padding
 *   key_id    = lowercase hex SHA-256 of the raw 32-byte Ed25519 public key
 *
 * A third party needs only the public key (PEM, SPKI) to check an export.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { readSecretFile } from '../config/secrets.js';

export interface Checkpoint {
  v: 1;
  stream: string;
  seq: number;
  head_hash: string;
  merkle_root: string;
  time: string;
  key_id: string;
  signature: string;
}

const PREFIX = 'gatehouse-audit-v1:checkpoint:';

export function checkpointCanonical(c: Omit<Checkpoint, 'signature'>): string {
  return `{"head_hash":${JSON.stringify(c.head_hash)},"key_id":${JSON.stringify(c.key_id)},"merkle_root":${JSON.stringify(c.merkle_root)},"seq":${c.seq},"stream":${JSON.stringify(c.stream)},"time":${JSON.stringify(c.time)},"v":1}`;
}

export function publicKeyId(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' });
  return createHash('sha256').update(Buffer.from(jwk.x as string, 'base64url')).digest('hex');
}

export interface CheckpointSigner {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  sign(c: Omit<Checkpoint, 'signature' | 'key_id' | 'v'>): Checkpoint;
  /**
   * Ed25519 over `message` as given (the archive's manifests, docs/audit.md "Archive"). The
   * caller's message starts with its own domain prefix, never the checkpoint prefix, so a
   * signature made here can never pass as a checkpoint's.
   */
  signDetached(message: Buffer): Buffer;
}

export function createSigner(privateKey: KeyObject): CheckpointSigner {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('the audit checkpoint key must be an Ed25519 private key');
  const publicKey = createPublicKey(privateKey);
  const keyId = publicKeyId(publicKey);
  return {
    keyId,
    publicKey,
    sign(c) {
      const body = { v: 1 as const, stream: c.stream, seq: c.seq, head_hash: c.head_hash, merkle_root: c.merkle_root, time: c.time, key_id: keyId };
      const signature = sign(null, Buffer.from(PREFIX + checkpointCanonical(body), 'utf8'), privateKey).toString('base64url');
      return { ...body, signature };
    },
    signDetached(message) {
      if (message.subarray(0, PREFIX.length).toString('utf8') === PREFIX) throw new Error('signDetached: the checkpoint prefix is reserved');
      return sign(null, message, privateKey);
    },
  };
}

/** Reads the private key file (PEM PKCS#8, a secret: mode 0600). */
export function loadSigner(file: string): CheckpointSigner {
  return createSigner(createPrivateKey(readSecretFile(file)));
}

export function loadPublicKey(pem: string): KeyObject {
  const k = createPublicKey(pem);
  if (k.asymmetricKeyType !== 'ed25519') throw new Error('the checkpoint public key must be Ed25519');
  return k;
}

export function verifyCheckpoint(c: Checkpoint, pub: KeyObject): boolean {
  try {
    const sig = Buffer.from(c.signature, 'base64url');
    // Only the one encoding of the signature (the decoder ignores a last character's
    // unused bits and stray characters): an altered signature text never verifies.
    if (sig.toString('base64url') !== c.signature) return false;
    return verify(null, Buffer.from(PREFIX + checkpointCanonical(c), 'utf8'), pub, sig);
  } catch {
    return false;
  }
}

/** `gatehouse audit keys generate`: writes PKCS#8 private (0600) and SPKI public PEM files. */
export function generateCheckpointKeys(privFile: string, pubFile: string): string {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(privFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  writeFileSync(pubFile, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644, flag: 'wx' });
  return publicKeyId(publicKey);
}
