/** Cross-field checks of the `audit:` block (called from config/validate.ts). */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PartialConfig } from '../config/load.js';
import { checkSecretFile } from '../config/secrets.js';

export function validateAudit(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const a = config.audit;
  if (!a.enabled) return;
  if (a.keys.length === 0) err('audit.keys', 'audit is enabled but no HMAC key is configured');
  const ids = new Set<string>();
  let active = 0;
  a.keys.forEach((k, i) => {
    if (ids.has(k.id)) err(`audit.keys[${i}].id`, `duplicate key id ${JSON.stringify(k.id)}`);
    ids.add(k.id);
    if (k.active === true) active++;
    const problem = checkSecretFile(resolve(dir, k.file));
    if (problem) err(`audit.keys[${i}].file`, problem);
    else {
      const text = readFileSync(resolve(dir, k.file), 'utf8').replace(/\r?\n$/, '');
      const bytes = /^(?:[0-9a-fA-F]{2}){32,}$/.test(text) ? text.length / 2 : Buffer.byteLength(text);
      if (bytes < 32) err(`audit.keys[${i}].file`, `the key in ${k.file} is shorter than 32 bytes`);
    }
  });
  if (active > 1) err('audit.keys', 'at most one key may be marked active');
  if (a.checkpoint_key_file !== undefined) {
    const path = resolve(dir, a.checkpoint_key_file);
    const problem = checkSecretFile(path);
    if (problem) err('audit.checkpoint_key_file', problem);
    else {
      try {
        if (createPrivateKey(readFileSync(path)).asymmetricKeyType !== 'ed25519') err('audit.checkpoint_key_file', 'not an Ed25519 private key');
      } catch {
        err('audit.checkpoint_key_file', 'not a PEM private key');
      }
    }
  }
  if (a.checkpoint_records === 0 && a.checkpoint_interval === 0 && a.checkpoint_key_file !== undefined) {
    err('audit.checkpoint_records', 'checkpoint_records and checkpoint_interval are both 0: no checkpoint would ever be signed');
  }
  if (a.store === 'postgres' && !config.state.postgres) err('audit.store', 'audit.store is postgres but no state.postgres block is given');
}
