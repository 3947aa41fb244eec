/**
 * Optional dependencies stay out of a gateway whose config does not use them
 * (docs/operations.md#memory): each costs megabytes of resident memory. A gateway is
 * started in a child process (a fresh module registry) and asked which packages it has
 * loaded; CommonJS modules, also when an ES module imports them, are listed in
 * require.cache, so @peculiar/x509 (ES module) shows through its CommonJS dependencies
 * reflect-metadata and tsyringe. A config with a policy must load Cedar: the check can
 * see a package that is there.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { asTestProcess, baseConfig, writeConfig } from '../testing/harness.js';

const DIST = resolve(fileURLToPath(import.meta.url), '..', '..');
const ROOT = resolve(DIST, '..');
const OPTIONAL = ['@cedar-policy/cedar-wasm', 'ioredis', 'acme-client', 'reflect-metadata', 'tsyringe'];

/** Starts a gateway on `config` in a child node, stops it, and returns the optional packages it had loaded. */
function loadedBy(config: unknown): string[] {
  const file = writeConfig(asTestProcess(config));
  const script = `
    import { createRequire } from 'node:module';
    const [dist, file, ...names] = process.argv.slice(1);
    const { loadConfig } = await import(dist + '/config/load.js');
    const { Gateway } = await import(dist + '/server/gateway.js');
    const { createLogger } = await import(dist + '/observability/logger.js');
    const gw = await Gateway.start({ loaded: loadConfig(file), watch: false, logger: createLogger({ level: 'silent' }) });
    await gw.close(0);
    const cached = Object.keys(createRequire(import.meta.url).cache);
    process.stdout.write(JSON.stringify(names.filter((n) => cached.some((p) => p.includes('/node_modules/' + n + '/')))));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, DIST, file, ...OPTIONAL], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as string[];
}

describe('optional dependencies are loaded only when the config uses them', () => {
  const upstream = 'http://127.0.0.1:9';
  const state = { state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-lazy-')) } };

  it('an edge gateway (allowlist, rate limit, memory store) loads none of them', () => {
    const site = { ip_filter: { allow: ['127.0.0.0/8'] }, rate_limits: [{ id: 'general', limit: 100, window: '1m' }] };
    assert.deepEqual(loadedBy(baseConfig(upstream, site, state)), []);
  });

  it('a site with a policy loads Cedar, and only Cedar', () => {
    const site = { policy: { files: [join(ROOT, 'examples', 'policies', 'public.cedar')] } };
    assert.deepEqual(loadedBy(baseConfig(upstream, site, state)), ['@cedar-policy/cedar-wasm']);
  });
});
