/**
 * Credentials kept in the identity registry are encrypted with AES-256-GCM under a key
 * from `identities.credential_keys` (secret files of 64 hex digits). The stored text is
 *
 *   v1.<key id>.<base64url 12-byte IV>.<base64url ciphertext ‖ 16-byte tag>
 *
 * with the subject as additional authenticated data, so a ciphertext copied onto another
 * identity's row does not decrypt. Several keys: the active one (else the last listed)
 * encrypts, every listed key decrypts — rotation is "add a key, mark it active, re-set
 * the credentials" (docs/llm.md#credentials). The plaintext is never logged; errors name
 * the key id or the subject, never a value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { readSecretFile } from '../config/secrets.js';

export class CredentialKeyError extends Error {
  readonly code = 'credential_key_invalid';
}

export interface CredentialKeyring {
  readonly activeId: string | null;
  encrypt(subject: string, plaintext: string): string;
  /** The plaintext, or throws (unknown key id, tampered text, another subject's row). */
  decrypt(subject: string, stored: string): string;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

function aad(subject: string): Buffer {
  return Buffer.from(`gatehouse-credential:v1:${subject}`, 'utf8');
}

export function loadCredentialKeyring(keys: ReadonlyArray<{ id: string; file: string; active?: boolean }>, dir: string): CredentialKeyring {
  const ring = new Map<string, Buffer>();
  for (const k of keys) {
    const text = readSecretFile(resolve(dir, k.file)).trim();
    if (!HEX64.test(text)) throw new CredentialKeyError(`credential key ${k.id} (${k.file}) must hold 64 hex digits (a 256-bit key)`);
    ring.set(k.id, Buffer.from(text, 'hex'));
  }
  const active = keys.find((k) => k.active === true) ?? keys[keys.length - 1];
  return credentialKeyring(ring, active?.id ?? null);
}

export function credentialKeyring(ring: ReadonlyMap<string, Buffer>, activeId: string | null): CredentialKeyring {
  return {
    activeId,
    encrypt(subject, plaintext) {
      if (activeId === null) throw new CredentialKeyError('no identities.credential_keys configured: cannot encrypt a credential');
      const key = ring.get(activeId) as Buffer;
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      c.setAAD(aad(subject));
      const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final(), c.getAuthTag()]);
      return `v1.${activeId}.${iv.toString('base64url')}.${ct.toString('base64url')}`;
    },
    decrypt(subject, stored) {
      const parts = stored.split('.');
      if (parts.length !== 4 || parts[0] !== 'v1') throw new CredentialKeyError(`the stored credential of ${subject} is not in the v1 format`);
      const key = ring.get(parts[1] as string);
      if (key === undefined) throw new CredentialKeyError(`the stored credential of ${subject} is encrypted with key ${parts[1]}, which is not in identities.credential_keys`);
      const iv = Buffer.from(parts[2] as string, 'base64url');
      const ct = Buffer.from(parts[3] as string, 'base64url');
      if (iv.length !== 12 || ct.length < 16) throw new CredentialKeyError(`the stored credential of ${subject} is malformed`);
      try {
        const d = createDecipheriv('aes-256-gcm', key, iv);
        d.setAAD(aad(subject));
        d.setAuthTag(ct.subarray(ct.length - 16));
        return Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString('utf8');
      } catch {
        throw new CredentialKeyError(`the stored credential of ${subject} does not decrypt with key ${parts[1]} (tampered, or copied from another identity)`);
      }
    },
  };
}
