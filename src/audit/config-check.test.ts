/** The `audit:` block: defaults and every cross-field problem listed with its path. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ConfigError, parseConfig, type Problem } from '../config/load.js';

const SITE = 'sites:\n  - id: a\n    hosts: [a.test]\n    upstream: { urls: ["http://127.0.0.1:1"] }\n';

function problems(text: string, file: string): Problem[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

it('audit defaults: off, sqlite, async, fail closed', () => {
  const { config } = parseConfig(SITE, '/tmp/x.yaml');
  assert.equal(config.audit.enabled, false);
  assert.equal(config.audit.store, 'sqlite');
  assert.equal(config.audit.mode, 'async');
  assert.equal(config.audit.on_failure, 'refuse');
  assert.equal(config.audit.flush_interval, 100);
  assert.equal(config.audit.spool_limit, 256 * 1024 * 1024);
});

it('audit: every problem is listed with its path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-cfg-'));
  writeFileSync(join(dir, 'open.key'), 'a'.repeat(64));
  chmodSync(join(dir, 'open.key'), 0o644);
  writeFileSync(join(dir, 'short.key'), 'short', { mode: 0o600 });
  writeFileSync(join(dir, 'ok.key'), 'b'.repeat(64), { mode: 0o600 });
  writeFileSync(join(dir, 'cp.key'), 'not a pem', { mode: 0o600 });
  const text = `${SITE}audit:
  enabled: true
  store: postgres
  keys:
    - { id: k1, file: open.key, active: true }
    - { id: k1, file: short.key, active: true }
    - { id: k3, file: ok.key }
  checkpoint_key_file: cp.key
`;
  const ps = problems(text, join(dir, 'gatehouse.yaml'));
  const at = (path: string, re: RegExp) => assert.ok(ps.some((p) => p.path === path && re.test(p.message)), `${path} ${re}: ${JSON.stringify(ps)}`);
  at('audit.keys[0].file', /mode 0644/);
  at('audit.keys[1].id', /duplicate key id/);
  at('audit.keys[1].file', /shorter than 32 bytes/);
  at('audit.keys', /at most one key/);
  at('audit.checkpoint_key_file', /not a PEM private key/);
  at('audit.store', /state.postgres/);
  const none = problems(`${SITE}audit: { enabled: true }\n`, join(dir, 'g.yaml'));
  assert.ok(none.some((p) => p.path === 'audit.keys' && /no HMAC key/.test(p.message)));
});
