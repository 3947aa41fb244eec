/**
 * The one argument parser of every `gatehouse` command and subcommand, so they behave
 * alike: `-c/--config FILE`, `-h/--help` on each (help on stdout, exit 0), durations
 * (`30s`, `5m`, `1h`, `1d`, src/config/units.ts) wherever a time is asked, and usage
 * errors that say what to do (the problem, the usage, a `--help` hint; exit 2).
 *
 * A command describes itself once (CommandSpec); that description is its parser, its
 * help text and what `main.ts` lists.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/units.js';

export class UsageError extends Error {}

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** Placeholder in the usage line (FILE, DIR, N); strings only. */
  readonly value?: string;
  readonly required?: boolean;
  /** May be given several times (the value is then a list). */
  readonly multiple?: boolean;
  /** A time: accepts 30s, 5m, 1h, 1d (or milliseconds); the parsed value is in milliseconds. */
  readonly duration?: boolean;
  readonly description?: string;
}

export interface SubcommandSpec {
  /** The usage line(s), e.g. `gatehouse token issue --key FILE ...`. */
  readonly usage: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Names of positional arguments it takes (e.g. `audit keys generate`); none by default. */
  readonly positionals?: readonly string[];
  /** More help text, printed after the options. */
  readonly details?: string;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** A command without subcommands has its usage and options here. */
  readonly usage?: string;
  readonly options?: Readonly<Record<string, OptionSpec>>;
  readonly positionals?: readonly string[];
  readonly details?: string;
  readonly subcommands?: Readonly<Record<string, SubcommandSpec>>;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface ParsedCommand {
  /** The subcommand, or null for a command without subcommands. */
  readonly sub: string | null;
  readonly values: Values;
  /** Duration options, parsed, in milliseconds. */
  readonly durations: Readonly<Record<string, number>>;
  readonly positionals: readonly string[];
  /** Prints `msg`, the usage and the --help hint on stderr; returns 2 (the usage exit code). */
  usageError(msg: string): number;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'print this help and exit' };

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries({ ...options, help: HELP }).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? (o.duration ? 'DURATION' : 'VALUE')}` : ''}`;
    const desc = [o.description, o.required ? '(required)' : '', o.duration ? '(a duration: 30s, 5m, 1h, 1d)' : ''].filter(Boolean).join(' ');
    return [flag, desc] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([f, d]) => `  ${f.padEnd(w)}  ${d}`.trimEnd());
}

/** The help text of a command (its subcommands listed) or of one subcommand. */
export function helpText(spec: CommandSpec, sub?: string): string {
  if (sub !== undefined && spec.subcommands?.[sub]) {
    const s = spec.subcommands[sub];
    return [`usage: ${s.usage}`, '', s.summary, '', 'options:', ...optionLines(s.options), ...(s.details ? ['', s.details] : [])].join('\n') + '\n';
  }
  if (spec.subcommands) {
    const names = Object.keys(spec.subcommands);
    const w = Math.max(...names.map((n) => n.length));
    return (
      [
        `usage: gatehouse ${spec.name} <subcommand> [options]`,
        '',
        spec.summary,
        '',
        'subcommands:',
        ...names.map((n) => `  ${n.padEnd(w)}  ${spec.subcommands?.[n]?.summary ?? ''}`),
        '',
        `gatehouse ${spec.name} <subcommand> --help shows a subcommand's options.`,
        ...(spec.details ? ['', spec.details] : []),
      ].join('\n') + '\n'
    );
  }
  return [`usage: ${spec.usage ?? `gatehouse ${spec.name} [options]`}`, '', spec.summary, '', 'options:', ...optionLines(spec.options ?? {}), ...(spec.details ? ['', spec.details] : [])].join('\n') + '\n';
}

function fail(spec: CommandSpec, sub: string | null, msg: string): number {
  const where = sub === null ? spec.name : `${spec.name} ${sub}`;
  const usage = sub !== null ? spec.subcommands?.[sub]?.usage : spec.subcommands ? `gatehouse ${spec.name} <${Object.keys(spec.subcommands).join('|')}> [options]` : spec.usage;
  process.stderr.write(`gatehouse ${where}: ${msg}\n${usage ? `usage: ${usage}\n` : ''}hint: run \`gatehouse ${where} --help\` for every option\n`);
  return 2;
}

/** Node's parseArgs messages, said as what to do. */
function explain(err: Error & { code?: string }): string {
  const m = /Unknown option '([^']+)'/.exec(err.message);
  if (m) return `unknown option ${m[1]}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return err.message.replace(/\.$/, '').replace(/^Option '([^']+)' argument missing/, '$1 needs a value');
  if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument: ${/'([^']*)'/.exec(err.message)?.[1] ?? err.message}`;
  return err.message;
}

/**
 * Parses `args` for `spec`: the subcommand first when it has them. Help requests print and
 * return 0; usage problems print (with what to do) and return 2; otherwise the parsed values.
 */
export function parseCommand(spec: CommandSpec, args: readonly string[]): ParsedCommand | number {
  let sub: string | null = null;
  let rest = [...args];
  let s: { options: Readonly<Record<string, OptionSpec>>; positionals?: readonly string[] };
  if (spec.subcommands) {
    const first = rest[0];
    if (first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(helpText(spec));
      return 0;
    }
    if (first === undefined) return fail(spec, null, 'a subcommand is required');
    const found = spec.subcommands[first];
    if (found === undefined) return fail(spec, null, `unknown subcommand ${JSON.stringify(first)} (one of: ${Object.keys(spec.subcommands).join(', ')})`);
    sub = first;
    rest = rest.slice(1);
    s = found;
  } else {
    s = { options: spec.options ?? {}, positionals: spec.positionals };
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(spec, sub ?? undefined));
    return 0;
  }
  let parsed;
  try {
    const options = Object.fromEntries(Object.entries(s.options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]));
    parsed = parseArgs({ args: rest, options, allowPositionals: (s.positionals?.length ?? 0) > 0, strict: true });
  } catch (err) {
    return fail(spec, sub, explain(err as Error & { code?: string }));
  }
  const values = parsed.values as Values;
  const positionals = parsed.positionals;
  const want = s.positionals ?? [];
  if (positionals.length > want.length) return fail(spec, sub, `unexpected argument: ${positionals[want.length]}`);
  for (let i = 0; i < want.length; i++) if (positionals[i] === undefined) return fail(spec, sub, `${want[i]} is required`);
  const durations: Record<string, number> = {};
  for (const [name, o] of Object.entries(s.options)) {
    const v = values[name];
    if (o.required && (v === undefined || v === '')) return fail(spec, sub, `--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''} is required`);
    if (o.duration && typeof v === 'string') {
      const ms = parseDuration(v);
      if (ms === null) return fail(spec, sub, `--${name} must be a duration such as 30s, 5m, 1h or 1d (got ${JSON.stringify(v)})`);
      durations[name] = ms;
    }
  }
  return { sub, values, durations, positionals, usageError: (msg) => fail(spec, sub, msg) };
}

/** The `-c/--config FILE` option every command that reads a config shares. */
export const CONFIG: OptionSpec = { type: 'string', short: 'c', value: 'FILE', description: 'the gatehouse config file' };
export const CONFIG_REQUIRED: OptionSpec = { ...CONFIG, required: true };
