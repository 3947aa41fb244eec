import { parseArgs } from 'node:util';

export class UsageError extends Error {}

/** `--config FILE` (or `-c FILE`), required by run and check. */
export function configArg(args: string[], extra: Record<string, { type: 'string' | 'boolean'; short?: string }> = {}): { config: string; values: Record<string, unknown> } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, ...extra }, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const config = parsed.values.config;
  if (typeof config !== 'string' || config === '') throw new UsageError('--config FILE is required');
  return { config, values: parsed.values as Record<string, unknown> };
}
