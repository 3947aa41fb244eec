/**
 * The CLI behaves alike everywhere (src/cli/args.ts): every command and subcommand prints
 * its help with --help and exits 0; an unknown option or subcommand says what is wrong,
 * shows the usage and a --help hint, and exits 2; durations are accepted wherever a time is.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BIN } from '../testing/harness.js';
import { parseCommand, type CommandSpec } from './args.js';
import { COMMANDS } from './main.js';

function gatehouse(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
}

describe('every command and subcommand', async () => {
  const specs: CommandSpec[] = [];
  for (const [name, c] of Object.entries(COMMANDS)) {
    const mod = (await c.load()) as { SPEC?: CommandSpec };
    it(`${name} describes itself with the shared parser`, () => {
      assert.ok(mod.SPEC, `${name} exports no SPEC (src/cli/args.ts)`);
      assert.equal(mod.SPEC.name, name);
    });
    if (mod.SPEC) specs.push(mod.SPEC);
  }
  for (const spec of specs) {
    const invocations = [[spec.name], ...Object.keys(spec.subcommands ?? {}).map((s) => [spec.name, s])];
    for (const inv of invocations) {
      for (const flag of ['--help', '-h']) {
        it(`gatehouse ${inv.join(' ')} ${flag} prints its help and exits 0`, () => {
          const r = gatehouse(...inv, flag);
          assert.equal(r.status, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`^usage: gatehouse ${inv.join(' ')}`));
          assert.equal(r.stderr, '');
        });
      }
      it(`gatehouse ${inv.join(' ')} --no-such-flag: the problem, the usage and a hint, exit 2`, () => {
        const r = gatehouse(...inv, '--no-such-flag');
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, inv.length === 1 && spec.subcommands ? /unknown subcommand "--no-such-flag"/ : /unknown option --no-such-flag/);
        assert.match(r.stderr, /^usage: gatehouse /m);
        assert.match(r.stderr, new RegExp(`hint: run \`gatehouse ${inv.join(' ')} --help\``));
      });
    }
  }
});

it('the top level: --help exits 0, an unknown command says what to run, exit 2', () => {
  const h = gatehouse('--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Every command and subcommand takes --help/);
  const u = gatehouse('frobnicate');
  assert.equal(u.status, 2);
  assert.match(u.stderr, /unknown command "frobnicate"\nhint: run `gatehouse --help`/);
});

it('-c is --config everywhere a config is read', () => {
  const r = gatehouse('check', '-c', '/nonexistent/gatehouse.yaml');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nonexistent\/gatehouse\.yaml/);
  const missing = gatehouse('check');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--config FILE is required/);
});

it('durations: 30s, 5m, 1h, 1d wherever a time is asked; anything else is a usage error that names the forms', () => {
  const spec: CommandSpec = { name: 't', summary: 's', usage: 'gatehouse t --ttl D', options: { ttl: { type: 'string', duration: true } } };
  for (const [text, ms] of [['30s', 30_000], ['5m', 300_000], ['1h', 3_600_000], ['1d', 86_400_000]] as const) {
    const p = parseCommand(spec, ['--ttl', text]);
    assert.ok(typeof p !== 'number');
    assert.equal(p.durations.ttl, ms);
  }
  const r = gatehouse('token', 'issue', '--key', 'k', '--kid', 'k', '--sub', 's', '--type', 'agent', '--iss', 'i', '--ttl', 'soon');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--ttl must be a duration such as 30s, 5m, 1h or 1d \(got "soon"\)/);
  const ca = gatehouse('ca', 'issue', '--dir', 'x', '--password-file', 'y', '--name', 'z', '--lifetime', '3q');
  assert.equal(ca.status, 2);
  assert.match(ca.stderr, /--lifetime must be a duration/);
});
