import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, type Problem } from './load.js';

function problems(text: string): Problem[] {
  try {
    parseConfig(text, '/tmp/gatehouse-test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return [...err.problems];
  }
  return [];
}

const site = (id: string, extra = '', host = `${id}.test`) => `  - id: ${id}\n    hosts: [${host}]\n    upstream: { urls: ["http://127.0.0.1:1"] }\n${extra}`;

describe('request reading settings (one reading)', () => {
  it('defaults: escaped paths refused, ;params kept, underscores dropped, only websocket upgrades, unknown hosts closed', () => {
    const { config } = parseConfig(`sites:\n${site('a')}`, '/tmp/x.yaml');
    assert.deepEqual(config.http.request, { escaped_path: 'reject', path_parameters: 'keep', header_underscores: 'drop', upgrades: ['websocket'] });
    assert.equal(config.http.unknown_host, 'close');
    assert.deepEqual(config.sites[0]?.policy, undefined);
  });

  it('escaped_path: keep is refused on a site with any path-based control, naming each', () => {
    const ps = problems(
      `sites:\n${site('a', '    path_prefix: /api\n    request: { escaped_path: keep }\n    rate_limits: [{ id: l, limit: 1, paths: [/login] }]\n')}${site('b', '', 'a.test')}`,
    );
    const p = ps.find((x) => x.path === 'sites[0].request.escaped_path');
    assert.ok(p, ps.map((x) => `${x.path}: ${x.message}`).join('\n'));
    assert.match(p.message, /path_prefix/);
    assert.match(p.message, /rate-limit rules with paths/);
    assert.match(p.message, /shared with another site/);
  });

  it('escaped_path: keep as the global default is checked on every site; a site on its own host may keep', () => {
    const ps = problems(`http: { request: { escaped_path: keep } }\nsites:\n${site('a', '    auth: { paths: [/x] }\n')}`);
    assert.ok(ps.some((x) => x.path === 'http.request.escaped_path' && /auth.paths/.test(x.message)));
    assert.deepEqual(problems(`sites:\n${site('a', '    request: { escaped_path: keep }\n')}`), []);
  });

  it('header values in config are printable ASCII only (never re-encoded on the way out)', () => {
    const ps = problems(`headers: { set: { X-Note: "caf\u00e9" } }\nsites:\n${site('a')}`);
    assert.ok(ps.some((x) => x.path.startsWith('headers.set') && /printable ASCII/.test(x.message)), ps.map((x) => `${x.path}: ${x.message}`).join('\n'));
  });

  it('upgrade protocol names and body media types are validated', () => {
    assert.ok(problems(`sites:\n${site('a', '    request: { upgrades: ["web socket"] }\n')}`).some((x) => x.path.includes('upgrades')));
  });
});
