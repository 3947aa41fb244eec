/**
 * `gatehouse demo` (what `npm start` runs): the bundled demo upstream plus the gateway on
 * examples/gatehouse.yaml, on embedded state, and a list of things to try.
 */
import { fileURLToPath } from 'node:url';
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { Gateway } from '../server/gateway.js';
import { parseCommand, type CommandSpec } from './args.js';
import { serveUntilSignal } from './run.js';

export const SPEC: CommandSpec = {
  name: 'demo',
  summary: 'Start the bundled demo upstream (127.0.0.1:3900) and the gateway on examples/gatehouse.yaml: what `npm start` runs. Ctrl-C (SIGINT) or SIGTERM stops both.',
  usage: 'gatehouse demo',
  options: {},
};

const EXAMPLES = new URL('../../examples/', import.meta.url);

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const { startDemoUpstream } = (await import(new URL('demo-upstream.js', EXAMPLES).href)) as {
    startDemoUpstream(port?: number): Promise<import('node:http').Server>;
  };
  let upstream: import('node:http').Server;
  try {
    upstream = await startDemoUpstream(3900);
  } catch (err) {
    process.stderr.write(`gatehouse demo: cannot start the demo upstream on 127.0.0.1:3900: ${(err as Error).message}\n`);
    return 1;
  }
  const file = fileURLToPath(new URL('gatehouse.yaml', EXAMPLES));
  let gw: Gateway;
  try {
    gw = await Gateway.start({ loaded: loadConfig(file), watch: true });
  } catch (err) {
    upstream.close();
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse demo: cannot start the gateway: ${(err as Error).message}\n`);
    return 1;
  }
  const a = gw.addresses();
  const pub = `http://127.0.0.1:${a.public[0]?.port}`;
  const adm = a.admin ? `http://127.0.0.1:${a.admin.port}` : '(admin disabled)';
  process.stderr.write(
    [
      '',
      `gatehouse demo: gateway on ${pub} in front of the demo upstream on http://127.0.0.1:3900`,
      `config: ${file} (edit it and save: gatehouse reloads; an invalid edit is refused and logged)`,
      '',
      'Try:',
      `  curl -i ${pub}/                         # allowed: proxied, with security headers and RateLimit headers`,
      `  curl -i ${pub}/headers                  # what the upstream received (X-Forwarded-*, X-Request-Id)`,
      `  for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' ${pub}/login; done; echo`,
      '                                            # 10 × 200, then 429 with Retry-After (login: 10/min)',
      `  curl -i ${pub}/LOGIN/../login           # every spelling of /login counts against the login limit`,
      `  curl -i -H 'Host: other.example' ${pub}/  # no site serves that host: closed with zero bytes (http.unknown_host)`,
      `  curl -i '${pub}/x/..%2flogin'             # 400 ambiguous_path: upstreams read %2F in different ways`,
      `  curl -N ${pub}/events                   # server-sent events stream through unbuffered`,
      `  curl -s ${adm}/metrics | grep gatehouse_  # Prometheus metrics (admin listener, loopback only)`,
      '',
      'Logs (JSON, one line per request) follow on stdout. Ctrl-C stops (graceful drain).',
      '',
    ].join('\n'),
  );
  // `npm start` runs this under npm (through a shell): when npm goes away — a signal that
  // only npm got, a killed terminal — this process is re-parented. The demo then stops as
  // on SIGTERM (graceful drain), so no gateway is left holding its ports.
  const parent = process.ppid;
  const orphaned = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(orphaned);
      process.kill(process.pid, 'SIGTERM');
    }
  }, 250);
  orphaned.unref();
  return serveUntilSignal(gw, () => new Promise<void>((ok) => upstream.close(() => ok()))).finally(() => clearInterval(orphaned));
}
