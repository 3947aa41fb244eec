/**
 * The HMAC keyring: `audit.keys: [{ id, file, active? }]`. Each file is a secret (mode
 * 0600/0400, checked by config/secrets.ts) whose content, without a trailing newline, is
 * the key: 64+ hex digits are decoded to bytes, anything else is taken as UTF-8 bytes.
 * At least 32 key bytes. The active key (the one marked `active`, else the last listed)
 * signs new records; every listed key verifies, so rotation = add a new id, keep the old.
 */
import { resolve } from 'node:path';
import { readSecretFile } from '../config/secrets.js';
import { macKey, type MacKey } from './chain-hash.js';

export interface Keyring {
  readonly activeId: string;
  /** Keys are held with their HMAC pad blocks precomputed (chain-hash.ts), never as raw bytes. */
  readonly active: MacKey;
  get(id: string): MacKey | undefined;
  ids(): string[];
}

export function decodeKey(text: string): Buffer {
  return /^(?:[0-9a-fA-F]{2}){32,}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'utf8');
}

export function createKeyring(keys: ReadonlyMap<string, Buffer>, activeId: string): Keyring {
  const macs = new Map<string, MacKey>();
  for (const [id, k] of keys) macs.set(id, macKey(k));
  const active = macs.get(activeId);
  if (active === undefined) throw new Error(`audit key ${activeId} is not in the keyring`);
  return {
    activeId,
    active,
    get: (id) => macs.get(id),
    ids: () => [...macs.keys()],
  };
}

export interface KeyConfig {
  readonly id: string;
  readonly file: string;
  readonly active?: boolean;
}

/** Reads every key file; throws with the path (never the content) when one is unusable. */
export function loadKeyring(list: readonly KeyConfig[], dir: string): Keyring {
  const keys = new Map<string, Buffer>();
  for (const k of list) {
    const key = decodeKey(readSecretFile(resolve(dir, k.file)));
    if (key.length < 32) throw new Error(`audit key ${k.id} (${k.file}) is shorter than 32 bytes`);
    keys.set(k.id, key);
  }
  const marked = list.find((k) => k.active === true) ?? list[list.length - 1];
  if (marked === undefined) throw new Error('audit.keys is empty');
  return createKeyring(keys, marked.id);
}
