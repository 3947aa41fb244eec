import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, parseConfig, type Problem } from './load.js';

const SITE = 'sites:\n  - id: a\n    hosts: [a.test]\n    upstream: { urls: ["http://127.0.0.1:1"] }\n';

function problems(text: string): Problem[] {
  try {
    parseConfig(text, '/tmp/gatehouse-test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

function errorAt(ps: Problem[], path: string, re: RegExp): void {
  assert.ok(
    ps.some((p) => p.severity === 'error' && p.path === path && re.test(p.message)),
    `no error at ${path} matching ${re}; got:\n${ps.map((p) => `${p.path}: ${p.message}`).join('\n')}`,
  );
}

describe('config loading', () => {
  it('applies defaults in milliseconds and bytes', () => {
    const { config } = parseConfig(SITE + '    rate_limits: [{ id: g, limit: 5 }]\n', '/tmp/x.yaml');
    assert.equal(config.http.header_timeout, 10_000);
    assert.equal(config.http.max_header_bytes, 16_384);
    assert.equal(config.sites[0]?.max_body_bytes, 10 * 1024 * 1024);
    assert.equal(config.sites[0]?.rate_limits[0]?.window, 60_000);
    assert.equal(config.sites[0]?.rate_limits[0]?.on_store_error, 'refuse');
    assert.equal(config.admin.listen, '127.0.0.1:9090');
    assert.equal(config.state.store, 'memory');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.sites[0]), 'frozen');
  });

  it('parses units', () => {
    const text = 'sites:\n  - id: a\n    hosts: [a.test]\n    max_body_bytes: 1KiB\n    upstream: { urls: ["http://127.0.0.1:1"], response_timeout: 250ms, connect_timeout: 2 }\n';
    const { config } = parseConfig(text, '/tmp/x.yaml');
    assert.equal(config.sites[0]?.max_body_bytes, 1024);
    assert.equal(config.sites[0]?.upstream?.response_timeout, 250);
  });

  it('reports unknown keys with their path', () => {
    const ps = problems('bogus: 1\n' + SITE + '    upstreams: []\n');
    errorAt(ps, 'bogus', /unknown key/);
    errorAt(ps, 'sites[0].upstreams', /unknown key/);
  });

  it('refuses inline secrets without echoing them', () => {
    const ps = problems(`state:\n  store: redis\n  redis:\n    url: redis://:hunter2@127.0.0.1:6379\n    password: hunter3\n${SITE}`);
    errorAt(ps, 'state.redis.url', /inline secret/);
    errorAt(ps, 'state.redis.password', /inline secret.*password_file/);
    for (const p of ps) assert.doesNotMatch(p.message, /hunter/);
  });

  it('lists every problem at once, including cross-field ones next to schema errors', () => {
    const ps = problems(
      [
        'listen: [{ address: nope }]',
        'sites:',
        '  - id: a',
        '    hosts: [x.test]',
        '    upstream: { urls: ["http://127.0.0.1:1"] }',
        '    ip_filter: { allow: [10.0.0.300/8] }',
        '    rate_limits: [{ id: r, limit: 0 }]',
        '  - id: a',
        '    hosts: [x.test]',
        '    upstream: { urls: ["ftp://x"] }',
        '    extra: 1',
        '',
      ].join('\n'),
    );
    errorAt(ps, 'listen[0].address', /not a listen address/);
    errorAt(ps, 'sites[0].rate_limits[0].limit', /1/);
    errorAt(ps, 'sites[0].ip_filter.allow[0]', /not an IP address or CIDR/);
    errorAt(ps, 'sites[1].id', /duplicate site id/);
    errorAt(ps, 'sites[1].hosts[0]', /already served/);
    errorAt(ps, 'sites[1].upstream.urls[0]', /http/);
    errorAt(ps, 'sites[1].extra', /unknown key/);
  });

  it('rejects bad durations, path patterns and a header timeout longer than the request timeout', () => {
    const ps = problems(`http:\n  header_timeout: 10m\n  request_timeout: 1m\n${SITE}    rate_limits: [{ id: r, limit: 1, window: soon, paths: ["/a*b"] }]\n`);
    errorAt(ps, 'http.header_timeout', /request_timeout/);
    errorAt(ps, 'sites[0].rate_limits[0].window', /invalid duration/);
  });

  it('validates path patterns and duplicate rule ids', () => {
    const ps = problems(`${SITE}    rate_limits: [{ id: r, limit: 1, paths: ["/a*b", "nope"] }, { id: r, limit: 2 }]\n`);
    errorAt(ps, 'sites[0].rate_limits[0].paths[0]', /./);
    errorAt(ps, 'sites[0].rate_limits[0].paths[1]', /./);
    errorAt(ps, 'sites[0].rate_limits[1].id', /duplicate rule id/);
  });

  it('warns loudly about trust-everything proxies and a public admin listener', () => {
    const { warnings } = parseConfig(`trusted_proxies: [0.0.0.0/0, "::/0", "10.0.0.0/8"]\nadmin: { listen: "0.0.0.0:9090" }\n${SITE}`, '/tmp/x.yaml');
    const paths = warnings.map((w) => w.path);
    assert.deepEqual(paths.sort(), ['admin.listen', 'trusted_proxies[0]', 'trusted_proxies[1]']);
    assert.match(warnings.find((w) => w.path === 'trusted_proxies[0]')?.message ?? '', /EVERY peer/);
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    assert.ok(problems('sites: [\n').some((p) => /^\(yaml line \d+ col \d+\)$/.test(p.path)));
    assert.ok(problems(`log: { level: info }\nlog: { level: warn }\n${SITE}`).some((p) => /yaml/.test(p.path)));
  });

  it('checks secret files: mode, readability; relative to the config directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-secret-'));
    writeFileSync(join(dir, 'redis.pass'), 's3cret\n');
    const cfg = `state:\n  store: redis\n  redis:\n    url: redis://127.0.0.1:6379\n    password_file: redis.pass\n${SITE}`;
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, cfg);
    chmodSync(join(dir, 'redis.pass'), 0o644);
    assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.path === 'state.redis.password_file' && /mode 0644/.test(p.message)));
    chmodSync(join(dir, 'redis.pass'), 0o600);
    assert.equal(loadConfig(file).config.state.redis?.password_file, 'redis.pass');
    writeFileSync(file, cfg.replace('redis.pass', 'missing.pass'));
    assert.throws(() => loadConfig(file), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /cannot read secret file/.test(p.message)));
  });

  it('accepts the bundled examples', () => {
    for (const name of ['gatehouse.yaml', 'gatehouse-redis.yaml']) {
      const file = fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
      const loaded = loadConfig(file);
      assert.equal(loaded.warnings.length, 0, `${name}: ${loaded.warnings.map((w) => w.message).join('; ')}`);
    }
  });
});
