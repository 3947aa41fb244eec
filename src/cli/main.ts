/**
 * `gatehouse <command>`: one file per command; each parses its arguments, calls a module
 * and maps errors to exit codes: 0 ok, 1 failure (including an invalid config), 2 usage.
 */
import { VERSION } from '../version.js';

export const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> }> = {
  run: { summary: 'run the gateway: gatehouse run --config FILE', load: () => import('./run.js') },
  proxy: { summary: 'reverse proxy in one line, Atlas defaults, prints its config: gatehouse proxy --from :8080 --to http://127.0.0.1:3000', load: () => import('./proxy.js') },
  check: { summary: 'validate a config and list every problem: gatehouse check --config FILE', load: () => import('./check.js') },
  ca: { summary: 'the internal CA: gatehouse ca init|issue|trust --dir DIR (docs/tls.md)', load: () => import('./ca.js') },
  audit: { summary: 'verify or export the audit trail, generate its keys: gatehouse audit --help', load: () => import('./audit.js') },
  keys: { summary: 'generate a signing key pair and JWKS: gatehouse keys generate --out DIR', load: () => import('./keys.js') },
  token: { summary: 'issue or revoke tokens: gatehouse token issue|revoke ...', load: () => import('./token.js') },
  identities: { summary: 'manage the identity registry: gatehouse identities add|list|suspend|resume|set-limit|remove|set-credential|clear-credential', load: () => import('./identities.js') },
  doctor: { summary: 'check a deployment against the seed checklists: gatehouse doctor --config FILE [--json]', load: () => import('./doctor.js') },
  usage: { summary: 'per-identity LLM token usage so far, from the running gateway: gatehouse usage --config FILE [--subject S]', load: () => import('./usage.js') },
  demo: { summary: 'start the bundled demo upstream and gateway (what `npm start` runs)', load: () => import('./demo.js') },
  policy: { summary: 'Cedar policy authoring: gatehouse policy schema [--config FILE --site ID] prints the schema policies are validated against', load: () => import('./policy.js') },
};

export function usage(): string {
  const lines = ['usage: gatehouse <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(8)} ${c.summary}`);
  lines.push('  version  print the version', '', 'Every command and subcommand takes --help; -c/--config FILE names the config.', 'docs: README.md and docs/ in the gatehouse package');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(usage() + '\n');
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    process.stdout.write(`gatehouse ${VERSION}\n`);
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    process.stderr.write(`gatehouse: unknown command ${JSON.stringify(cmd)}\nhint: run \`gatehouse --help\` for the commands\n${usage()}\n`);
    return 2;
  }
  return (await c.load()).run(rest);
}
