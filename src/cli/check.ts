/** `gatehouse check --config FILE`: validate and list every problem with its path. */
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { configArg, UsageError } from './args.js';

export async function run(args: string[]): Promise<number> {
  let file: string;
  try {
    file = configArg(args).config;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`gatehouse check: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  try {
    const loaded = loadConfig(file);
    if (loaded.warnings.length > 0) {
      process.stderr.write(`WARNING: ${loaded.file} is valid but has ${loaded.warnings.length} warning(s):\n${formatProblems(loaded.warnings)}\n`);
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
