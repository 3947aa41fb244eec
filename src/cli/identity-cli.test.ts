/**
 * The issuing and management CLI against a running gateway: keys generate → token issue →
 * the gateway accepts the token; identities add/suspend/resume/set-limit reach the
 * gateway through the shared SQLite registry; token revoke reaches it through the shared
 * revocation store (the same code and key layout the gateway reads with).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseConfig, BIN, request, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { keyDir } from '../testing/tokens.js';

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function eventually(f: () => Promise<number>, want: number, what: string): Promise<void> {
  const end = Date.now() + 5000;
  for (;;) {
    const s = await f();
    if (s === want) return;
    if (Date.now() > end) assert.fail(`${what}: still ${s}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('gatehouse keys / token / identities', { concurrency: false }, () => {
  const dir = keyDir();
  let up: Upstream;
  let g: TestGateway;
  let keys: { kid: string; private_key: string; public_key: string; jwks: string };

  before(async () => {
    const r = cli('keys', 'generate', '--out', join(dir, 'k'), '--alg', 'RS256', '--bits', '2048', '--kid', 'cli-1');
    assert.equal(r.status, 0, r.stderr);
    keys = JSON.parse(r.stdout.split('\n')[0] as string) as typeof keys;
    up = await startUpstream();
    g = await startGateway(
      baseConfig(up.url, { auth: {} }, { auth: { issuers: [{ id: 'main', iss: 'https://cli.test', jwks_file: keys.jwks }] }, identities: { refresh_interval: '100ms' }, revocation: { poll_interval: '100ms' } }),
    );
  });
  after(async () => {
    await g.close();
    await up.close();
  });

  it('keys generate writes a 0600 private key, a public key and a JWKS; refuses weak RSA', () => {
    assert.equal(statSync(keys.private_key).mode & 0o777, 0o600);
    assert.equal(keys.kid, 'cli-1');
    assert.equal(cli('keys', 'generate', '--out', join(dir, 'weak'), '--bits', '1024').status, 2);
  });

  it('issues tokens the gateway accepts once the identity is registered, and manages the identity', async () => {
    const issued = cli('token', 'issue', '--key', keys.private_key, '--kid', 'cli-1', '--sub', 'agent-cli', '--type', 'agent', '--iss', 'https://cli.test', '--ttl', '10m');
    assert.equal(issued.status, 0, issued.stderr);
    const token = issued.stdout.trim();
    const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(typeof payload.jti, 'string');
    assert.equal((payload.exp as number) - (payload.iat as number), 600);
    const get = async () => (await request(`${g.url}/x`, { headers: { authorization: `Bearer ${token}` } })).status;
    assert.equal(await get(), 403, 'not registered yet');
    assert.equal(cli('identities', 'add', '--config', g.file, '--subject', 'agent-cli', '--type', 'agent', '--rpm', '100').status, 0);
    await eventually(get, 200, 'registered identity accepted');
    assert.equal(cli('identities', 'add', '--config', g.file, '--subject', 'agent-cli', '--type', 'agent').status, 1, 'duplicate');
    assert.equal(cli('identities', 'suspend', '--config', g.file, '--subject', 'agent-cli').status, 0);
    await eventually(get, 403, 'suspension reaches the gateway');
    assert.equal(cli('identities', 'resume', '--config', g.file, '--subject', 'agent-cli').status, 0);
    await eventually(get, 200, 'resume reaches the gateway');
    assert.equal(cli('identities', 'set-limit', '--config', g.file, '--subject', 'agent-cli', '--rpm', '7').status, 0);
    const listed = JSON.parse(cli('identities', 'list', '--config', g.file).stdout) as { identities: Array<{ subject: string; rpm_limit: number }> };
    assert.deepEqual(listed.identities.map((i) => [i.subject, i.rpm_limit]), [['agent-cli', 7]]);

    const revoked = cli('token', 'revoke', '--config', g.file, '--jti', payload.jti as string, '--exp', String(payload.exp));
    assert.equal(revoked.status, 0, revoked.stderr);
    await eventually(get, 401, 'CLI revocation reaches the gateway');
    assert.equal(cli('identities', 'remove', '--config', g.file, '--subject', 'agent-cli').status, 0);
  });

  it('refuses a private key readable by others and asks for what is missing', () => {
    assert.equal(cli('token', 'issue', '--key', keys.public_key, '--kid', 'x', '--sub', 's', '--type', 'agent', '--iss', 'i').status, 1);
    assert.equal(cli('token', 'issue', '--kid', 'x').status, 2);
    assert.equal(cli('token', 'revoke', '--config', g.file).status, 2);
  });
});
