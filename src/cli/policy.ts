/**
 * `gatehouse policy schema [--config FILE --site ID]`: prints the Cedar schema policies are
 * validated against (docs/policy.md#schema) — the shipped `policy/gatehouse.cedarschema`,
 * or a site's own, with its body fields in `context.body`. For editors and `cedar validate`.
 */
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { gatehouseSchema } from '../stages/policy/schema.js';
import { parseCommand, type CommandSpec } from './args.js';

export const SPEC: CommandSpec = {
  name: 'policy',
  summary: 'Cedar policy authoring: print the schema policies are validated against',
  subcommands: {
    schema: {
      usage: 'gatehouse policy schema [--config FILE --site ID]',
      summary: 'print the Cedar schema (a site\'s own with --config and --site: its body fields in context.body)',
      options: { config: { type: 'string', short: 'c', value: 'FILE' }, site: { type: 'string', value: 'ID' } },
    },
  },
};

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const { values } = p;
  if (values.site !== undefined && values.config === undefined) return p.usageError('--site needs --config FILE');
  if (values.config === undefined) {
    process.stdout.write(gatehouseSchema());
    return 0;
  }
  try {
    const loaded = loadConfig(values.config as string);
    const sites = loaded.config.sites.filter((s) => s.policy !== undefined);
    const site = values.site === undefined ? (sites.length === 1 ? sites[0] : undefined) : sites.find((s) => s.id === values.site);
    if (site?.policy === undefined) {
      return p.usageError(
        values.site === undefined ? `give --site ID (sites with a policy: ${sites.map((s) => s.id).join(', ') || 'none'})` : `no site ${JSON.stringify(values.site)} with a policy (sites with a policy: ${sites.map((s) => s.id).join(', ') || 'none'})`,
      );
    }
    process.stdout.write(gatehouseSchema(site.policy));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    throw err;
  }
}
