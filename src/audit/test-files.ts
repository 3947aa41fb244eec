/** Test helper (not public API): an audit setup on disk — HMAC keys, checkpoint key pair, state dir. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCheckpointKeys } from './checkpoint.js';

export interface AuditFiles {
  readonly dir: string;
  readonly stateDir: string;
  readonly k1: string;
  readonly k2: string;
  readonly privateKey: string;
  readonly publicKey: string;
  /** An `audit:` block for the config. */
  block(extra?: Record<string, unknown>): Record<string, unknown>;
}

export function auditFiles(): AuditFiles {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-files-'));
  const k1 = join(dir, 'k1.key');
  const k2 = join(dir, 'k2.key');
  writeFileSync(k1, randomBytes(32).toString('hex'), { mode: 0o600 });
  writeFileSync(k2, randomBytes(32).toString('hex'), { mode: 0o600 });
  const privateKey = join(dir, 'checkpoint.key');
  const publicKey = join(dir, 'checkpoint.pub');
  generateCheckpointKeys(privateKey, publicKey);
  const stateDir = join(dir, 'state');
  return {
    dir,
    stateDir,
    k1,
    k2,
    privateKey,
    publicKey,
    block: (extra = {}) => ({
      enabled: true,
      keys: [{ id: 'k1', file: k1 }],
      checkpoint_key_file: privateKey,
      flush_interval: '10ms',
      checkpoint_records: 50,
      drop_interval: '200ms',
      ...extra,
    }),
  };
}
