import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.js';
import { keyDir, makeKey } from '../testing/tokens.js';

it('gatehouse check lists every identity config problem with its path', () => {
  const dir = keyDir();
  const k = makeKey(dir, 'k1');
  const loose = join(dir, 'issuer.key');
  writeFileSync(loose, 'x');
  chmodSync(loose, 0o644);
  const cfg = {
    admin: { issuer: { key_file: loose, kid: 'a', iss: 'x' } },
    auth: {
      issuers: [
        { id: 'one', keys: [{ kid: 'k1', file: k.file }] },
        { id: 'one', iss: 'https://b', keys: [{ kid: 'k1', file: 'missing.pem' }, { kid: 'k1', file: k.file, alg: 'ES256' }] },
        { id: 'empty' },
      ],
      identity_headers: { subject: 'Authorization' },
    },
    identities: { store: 'postgres', human_rpm_by_role: { admin: 10 } },
    sites: [{ id: 'app', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] }, auth: { issuers: ['one', 'nope'], paths: [] } }],
  };
  let problems: ReadonlyArray<{ path: string; message: string }> = [];
  try {
    parseConfig(stringify(cfg), join(dir, 'gatehouse.yaml'));
    assert.fail('expected a config error');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    problems = err.problems;
  }
  const at = (path: string, re: RegExp) => assert.ok(problems.some((p) => p.path === path && re.test(p.message)), `${path} ${re}: ${JSON.stringify(problems)}`);
  at('auth.issuers[1].id', /duplicate issuer/);
  at('auth.issuers[1].keys[0].file', /missing\.pem.*ENOENT|ENOENT/);
  at('auth.issuers[1].keys[1].file', /cannot verify ES256/);
  at('auth.issuers[2]', /needs keys, jwks_file or jwks_url/);
  at('auth.identity_headers', /authorization cannot carry/);
  at('sites[0].auth.issuers[1]', /no issuer "nope"/);
  at('sites[0].auth.paths', /protects nothing/);
  at('identities.store', /state.postgres/);
  at('identities.human_rpm_by_role', /default/);
  at('admin.issuer.key_file', /mode 0644/);
});
