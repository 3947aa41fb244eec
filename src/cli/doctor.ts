/**
 * `gatehouse doctor --config FILE [--json] [--pid PID] [--admin URL]`: checks a running or
 * stopped deployment against both seeds' checklists (docs/deploy.md#doctor), one line per
 * check: PASS, WARN, FAIL (with the fix) or SKIP (does not apply). Exit 1 on any FAIL.
 *
 * Started as root with process.user configured, doctor drops to that user first (as run
 * does), so it sees the files as the gateway does and never creates a state file (an
 * SQLite database, a WAL file) that the gateway could not open afterwards.
 */
import { ConfigError, loadConfig, loadUnvalidated, type Problem } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { runDoctor, type CheckResult } from '../doctor/checks.js';
import { currentIdentity, dropPrivileges, PrivilegeError, resolveRunAs } from '../server/privileges.js';

import { CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';

export const SPEC: CommandSpec = {
  name: 'doctor',
  summary: 'Check the deployment a config describes (and the running gateway, through its admin listener) against the seed checklists; see docs/deploy.md. Exit 1 when a check FAILs.',
  usage: 'gatehouse doctor --config FILE [--json] [--pid PID] [--admin URL]',
  options: {
    config: CONFIG_REQUIRED,
    json: { type: 'boolean', description: 'print JSON' },
    pid: { type: 'string', value: 'PID', description: 'the running gateway\'s process id' },
    admin: { type: 'string', value: 'URL', description: 'the admin listener (default: from the config)' },
  },
};

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const values = p.values as { config: string; json?: boolean; pid?: string; admin?: string };
  const pid = values.pid !== undefined ? Number(values.pid) : undefined;
  if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) return p.usageError('--pid must be a process id');
  const file = values.config;
  let { loaded, problems } = loadForDoctor(file);
  let dropped: string | null = null;
  if (loaded !== null && currentIdentity().uid === 0) {
    try {
      const to = resolveRunAs(loaded.config.process);
      if (to !== null) {
        dropPrivileges(to);
        dropped = to.user;
        ({ loaded, problems } = loadForDoctor(file));
      }
    } catch (err) {
      if (!(err instanceof PrivilegeError)) throw err;
    }
  }
  if (loaded === null) {
    const r: CheckResult = { id: 'config', status: 'FAIL', message: problems.map((p) => `${p.path}: ${p.message}`).join('; '), fix: 'run gatehouse check --config FILE and fix every error' };
    print([r], values.json === true, null);
    return 1;
  }
  const { config, dir } = loaded;
  const results = await runDoctor(config, dir, { pid, admin: values.admin, problems });
  print(results, values.json === true, dropped);
  return results.some((r) => r.status === 'FAIL') ? 1 : 0;
}

/** The config to check: validated, or schema-valid only (its problems then become check results), or null. */
export function loadForDoctor(file: string): { loaded: { config: Readonly<Config>; dir: string } | null; problems: Problem[] } {
  try {
    const l = loadConfig(file);
    return { loaded: { config: l.config, dir: l.dir }, problems: [...l.warnings] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const u = loadUnvalidated(file);
    return { loaded: u ? { config: u.config, dir: u.dir } : null, problems: [...err.problems] };
  }
}

function print(results: CheckResult[], json: boolean, dropped: string | null): void {
  if (json) {
    process.stdout.write(JSON.stringify({ checked_as: dropped, ok: !results.some((r) => r.status === 'FAIL'), checks: results }, null, 2) + '\n');
    return;
  }
  if (dropped !== null) process.stdout.write(`(checked as ${dropped}, the user gatehouse runs as)\n`);
  for (const r of results) process.stdout.write(`${r.status.padEnd(4)}  ${r.id.padEnd(18)} ${r.message}${r.fix ? ` — fix: ${r.fix}` : ''}\n`);
  const n = (s: string) => results.filter((r) => r.status === s).length;
  process.stdout.write(`${n('FAIL')} fail, ${n('WARN')} warn, ${n('PASS')} pass, ${n('SKIP')} skipped\n`);
}
