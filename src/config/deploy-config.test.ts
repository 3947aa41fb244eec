/** Config for deployments: credential:NAME references, the process block, store TLS checks, the secret-file group rule. */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ConfigError, loadConfig, type LoadedConfig } from './load.js';
import { checkSecretFile, withSecretReader } from './secrets.js';
import { writeConfig } from '../testing/harness.js';

const site = { id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } };

function problems(config: unknown): Array<{ path: string; message: string; severity: string }> {
  try {
    return [...loadConfig(writeConfig(config)).warnings];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

it('credential:NAME resolves to $CREDENTIALS_DIRECTORY/NAME for any file key (LoadCredential=)', () => {
  const creds = mkdtempSync(join(tmpdir(), 'gatehouse-creds-'));
  writeFileSync(join(creds, 'admin-token'), 'a-token-from-systemd-credentials\n', { mode: 0o400 });
  const loaded: LoadedConfig = withEnv('CREDENTIALS_DIRECTORY', creds, () => loadConfig(writeConfig({ admin: { token_file: 'credential:admin-token' }, sites: [site] })));
  assert.equal(loaded.config.admin.token_file, join(creds, 'admin-token'));
});

it('credential:NAME without $CREDENTIALS_DIRECTORY, or with a path in the name, is an error at its key', () => {
  const none = withEnv('CREDENTIALS_DIRECTORY', undefined, () => problems({ admin: { token_file: 'credential:admin-token' }, sites: [site] }));
  assert.ok(none.some((p) => p.path === 'admin.token_file' && /needs \$CREDENTIALS_DIRECTORY/.test(p.message)), JSON.stringify(none));
  const bad = withEnv('CREDENTIALS_DIRECTORY', tmpdir(), () => problems({ audit: { keys: [{ id: 'k', file: 'credential:../etc/shadow' }] }, sites: [site] }));
  assert.ok(bad.some((p) => p.path === 'audit.keys[0].file' && /no path/.test(p.message)), JSON.stringify(bad));
});

it('process: unknown user, contradicting serve_as_root, uid without a group are errors with their paths', () => {
  const at = (config: unknown, path: string, re: RegExp) => {
    const ps = problems(config);
    assert.ok(ps.some((p) => p.severity === 'error' && p.path === path && re.test(p.message)), `${path} ${re}: ${JSON.stringify(ps)}`);
  };
  at({ process: { user: 'no-such-user-here' }, sites: [site] }, 'process.user', /no user "no-such-user-here" in \/etc\/passwd/);
  at({ process: { user: 'nobody', serve_as_root: true }, sites: [site] }, 'process.serve_as_root', /contradicts process.user/);
  at({ process: { user: 48213 }, sites: [site] }, 'process.group', /primary group is unknown/);
  at({ process: { user: 0 }, sites: [site] }, 'process.user', /drops nothing/);
  assert.deepEqual(problems({ process: { user: 48213, group: 48213 }, sites: [site] }).filter((p) => p.severity === 'error'), []);
});

it('store TLS: sslmode in the URL, tls with redis://, internal_ca without a ca block are errors; a remote store in clear text is a warning', () => {
  const ps = problems({
    state: {
      store: 'redis',
      redis: { url: 'redis://10.1.2.3:6379/0', tls: { internal_ca: true } },
      postgres: { url: 'postgres://gh@db.example:5432/gh?sslmode=require' },
    },
    identities: { store: 'postgres' },
    sites: [site],
  });
  const has = (sev: string, path: string, re: RegExp) => assert.ok(ps.some((p) => p.severity === sev && p.path === path && re.test(p.message)), `${sev} ${path} ${re}: ${JSON.stringify(ps)}`);
  has('error', 'state.postgres.url', /may not set sslmode/);
  has('error', 'state.redis.tls', /need a rediss:\/\/ URL/);
  has('error', 'state.redis.tls.internal_ca', /needs a top-level ca block/);
  has('warning', 'state.postgres', /db\.example is not on loopback and the connection is not encrypted/);
  has('warning', 'state.redis.url', /10\.1\.2\.3 is not on loopback/);
  const local = problems({ state: { store: 'redis', redis: { url: 'redis://127.0.0.1:6379/0' } }, sites: [site] });
  assert.ok(!local.some((p) => /not encrypted/.test(p.message)), 'loopback in clear text is fine');
});

it('secret files: root-owned and readable by the gateway group only is accepted for a non-root gateway (0640), never for root or another group', { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-secret-group-'));
  chmodSync(dir, 0o755);
  const file = join(dir, 's');
  writeFileSync(file, 'secret-value', { mode: 0o640 });
  chownSync(file, 0, 4321);
  chmodSync(file, 0o640);
  const gateway = { uid: 1234, gid: 4321, groups: [4321] };
  assert.equal(withSecretReader(gateway, () => checkSecretFile(file)), null);
  assert.match(withSecretReader(null, () => checkSecretFile(file)) ?? '', /has mode 0640/, 'a gateway running as root gets no group exception');
  assert.match(withSecretReader({ uid: 1234, gid: 999, groups: [999] }, () => checkSecretFile(file)) ?? '', /has mode 0640/, 'another group');
  chmodSync(file, 0o660);
  assert.match(withSecretReader(gateway, () => checkSecretFile(file)) ?? '', /has mode 0660/, 'group may not write');
  chmodSync(file, 0o644);
  assert.match(withSecretReader(gateway, () => checkSecretFile(file)) ?? '', /has mode 0644/, 'others may not read');
  chownSync(file, 1234, 4321);
  chmodSync(file, 0o640);
  assert.match(withSecretReader(gateway, () => checkSecretFile(file)) ?? '', /has mode 0640/, 'only a root-owned file may be group-readable');
});
