/** `gatehouse check --config FILE`: validate and list every problem with its path. */
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { checkArchiveTarget } from '../audit/archive/check.js';
import { CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';

export const SPEC: CommandSpec = {
  name: 'check',
  summary: 'Validate a config and list every problem with its path (Cedar policies against the schema, with file, line and column).',
  usage: 'gatehouse check --config FILE',
  options: { config: CONFIG_REQUIRED },
};

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const file = p.values.config as string;
  try {
    const loaded = loadConfig(file);
    // The audit archive target is checked where it is (a public bucket is an error).
    const archive = await checkArchiveTarget(loaded);
    const archiveErrors = archive.filter((p) => p.severity === 'error');
    if (archiveErrors.length > 0) {
      process.stderr.write(`${loaded.file}: invalid, ${archiveErrors.length} error(s)\n${formatProblems(archive)}\n`);
      return 1;
    }
    const warnings = [...loaded.warnings, ...archive];
    if (warnings.length > 0) {
      process.stderr.write(`WARNING: ${loaded.file} is valid but has ${warnings.length} warning(s):\n${formatProblems(warnings)}\n`);
    }
    process.stdout.write(`${loaded.file}: ok (${loaded.config.sites.length} site(s))\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      const errors = err.problems.filter((p) => p.severity === 'error').length;
      process.stderr.write(`${err.file}: invalid, ${errors} error(s)\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    throw err;
  }
}
