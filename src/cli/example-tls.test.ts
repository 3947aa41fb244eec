import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { BIN } from '../testing/harness.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/gatehouse-tls.yaml', import.meta.url));

it('examples/gatehouse-tls.yaml passes gatehouse check once its CA is created as its header says', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-example-tls-'));
  copyFileSync(EXAMPLE, join(dir, 'gatehouse-tls.yaml'));
  mkdirSync(join(dir, 'tls'));
  writeFileSync(join(dir, 'tls', 'ca-password'), 'an example password\n', { mode: 0o600 });
  const before = spawnSync(process.execPath, [BIN, 'check', '--config', join(dir, 'gatehouse-tls.yaml')], { encoding: 'utf8' });
  assert.equal(before.status, 1, 'without the CA the config is refused');
  assert.match(before.stderr, /ca\.dir/);
  const init = spawnSync(process.execPath, [BIN, 'ca', 'init', '--dir', join(dir, 'tls', 'ca'), '--password-file', join(dir, 'tls', 'ca-password')], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const r = spawnSync(process.execPath, [BIN, 'check', '--config', join(dir, 'gatehouse-tls.yaml')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(2 site/);
  assert.equal(r.stderr, '', 'no warnings');
});
