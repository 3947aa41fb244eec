/**
 * Network zones: `gatehouse check` refuses a site routed into a zone it may not reach (and
 * a config that uses zones only in part), the shipped Atlas-style example passes, and
 * the proxy refuses a zone violation at run time when a config got past check.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config/load.js';
import { Gateway } from '../server/gateway.js';
import { BIN, baseConfig, request, startUpstream, writeConfig, type Upstream } from '../testing/harness.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

function problems(config: unknown): string[] {
  try {
    loadConfig(writeConfig(config));
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.filter((p) => p.severity === 'error').map((p) => `${p.path}: ${p.message}`);
  }
}

describe('zones', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream();
  });
  after(async () => {
    await up?.close();
  });

  const site = (id: string, host: string, zones: string[] | undefined, zone: string | undefined) => ({
    id,
    hosts: [host],
    upstream: { urls: [up.url], ...(zone === undefined ? {} : { zone }) },
    ...(zones === undefined ? {} : { zones }),
  });

  it('check refuses a site routed into a zone it may not reach, and lists every problem', () => {
    const p = problems(
      baseConfig(up.url, {}, {
        sites: [site('public', 'www.test', ['production'], 'management'), site('admin', 'admin.test', ['management'], 'management'), site('dev', 'dev.test', ['development'], 'production')],
      }),
    );
    assert.deepEqual(p, [
      'sites[0].upstream.zone: site "public" may reach zones [production] but its upstream is in zone "management"',
      'sites[2].upstream.zone: site "dev" may reach zones [development] but its upstream is in zone "production"',
    ]);
  });

  it('once zones are used, every upstream declares one and every site its list', () => {
    const p = problems(baseConfig(up.url, {}, { sites: [site('a', 'a.test', ['production'], 'production'), site('b', 'b.test', undefined, undefined), site('c', 'c.test', undefined, 'production')] }));
    assert.deepEqual(p, [
      'sites[1].upstream.zone: this config uses zones: every upstream declares the zone it is in',
      'sites[1].zones: this config uses zones: every site lists the zones it may reach',
      'sites[2].zones: this config uses zones: every site lists the zones it may reach',
    ]);
    assert.deepEqual(problems(baseConfig(up.url)), [], 'a config without zones is unaffected');
  });

  it('the Atlas-style example passes gatehouse check; moving its admin site into production does not', () => {
    const ok = spawnSync(process.execPath, [BIN, 'check', '--config', join(EXAMPLES, 'gatehouse-zones.yaml')], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /ok \(4 site/);
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-zones-'));
    cpSync(join(EXAMPLES, 'policies'), join(dir, 'policies'), { recursive: true });
    const text = readFileSync(join(EXAMPLES, 'gatehouse-zones.yaml'), 'utf8').replace('zone: management', 'zone: production');
    writeFileSync(join(dir, 'gatehouse.yaml'), text);
    const bad = spawnSync(process.execPath, [BIN, 'check', '--config', join(dir, 'gatehouse.yaml')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /sites\[1\]\.upstream\.zone: site "admin" may reach zones \[management\] but its upstream is in zone "production"/);
  });

  it('the proxy refuses a zone violation at run time (config edited past check): 403 zone_violation, upstream never contacted', async () => {
    const loaded = loadConfig(writeConfig(baseConfig(up.url, { zones: ['production'], upstream: { urls: [up.url], zone: 'production' } })));
    const [s] = loaded.config.sites;
    assert.ok(s);
    const edited = { ...loaded, config: { ...loaded.config, sites: [{ ...s, upstream: { ...(s.upstream as NonNullable<typeof s.upstream>), zone: 'management' } }] } };
    const gw = await Gateway.start({ loaded: edited, watch: false, logger: pino({ level: 'silent' }) });
    try {
      const port = gw.addresses().public[0]?.port;
      const before = up.seen.length;
      const r = await request(`http://127.0.0.1:${port}/x`);
      assert.equal(r.status, 403);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'zone_violation');
      assert.equal(up.seen.length, before);
    } finally {
      await gw.close(1000);
    }
  });
});
