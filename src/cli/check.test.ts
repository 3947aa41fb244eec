import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { BIN, writeConfig } from '../testing/harness.js';

function check(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'check', ...args], { encoding: 'utf8' });
}

it('gatehouse check: 0 and "ok" for a valid config, warnings on stderr', () => {
  const file = writeConfig({ trusted_proxies: ['0.0.0.0/0'], sites: [{ id: 'a', hosts: ['a.test'], upstream: { urls: ['http://127.0.0.1:1'] } }] });
  const r = check('--config', file);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok \(1 site/);
  assert.match(r.stderr, /WARNING/);
  assert.match(r.stderr, /trusted_proxies\[0\]/);
});

it('gatehouse check: non-zero, every problem with its path', () => {
  const file = writeConfig({ bogus: true, sites: [{ id: 'Bad Id', hosts: [], upstream: { urls: ['nope'] } }] });
  const r = check('--config', file);
  assert.equal(r.status, 1);
  for (const path of ['bogus', 'sites[0].id', 'sites[0].hosts', 'sites[0].upstream.urls[0]']) assert.ok(r.stderr.includes(path), `${path} missing:\n${r.stderr}`);
});

it('gatehouse check: usage errors exit 2', () => {
  assert.equal(check().status, 2);
  assert.equal(check('--nope').status, 2);
  assert.equal(spawnSync(process.execPath, [BIN, 'frobnicate']).status, 2);
});

it('gatehouse run refuses an invalid config and exits 1', () => {
  const file = writeConfig({ sites: [] });
  const r = spawnSync(process.execPath, [BIN, 'run', '--config', file], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sites/);
});
