/**
 * `gatehouse proxy --from :8080 --to http://127.0.0.1:3000`: a one-line start, like
 * `caddy reverse-proxy`. It builds an ordinary config — one catch-all site in front of the
 * `--to` upstreams (a pool when given several), with the Atlas defaults: an allowlist of
 * private and loopback ranges, 100 requests/min per client and 10/min on login paths, and
 * the security headers every site gets — prints it as YAML so the user can take it over
 * (`gatehouse run --config` it), and runs it. Nothing is special about this config: it is
 * loaded and validated like a file.
 */
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, formatProblems, parseConfig } from '../config/load.js';
import { Gateway } from '../server/gateway.js';
import { parseCommand, type CommandSpec } from './args.js';
import { serveUntilSignal } from './run.js';

export const SPEC: CommandSpec = {
  name: 'proxy',
  summary:
    'Run gatehouse in front of the --to upstream(s) with the Atlas defaults, printing the equivalent config file (YAML) on stderr so you can save it and run it with `gatehouse run --config FILE`.',
  usage: 'gatehouse proxy --to URL [--to URL ...] [--from ADDRESS] [--admin ADDRESS|off] [--print-config]',
  options: {
    to: { type: 'string', value: 'URL', multiple: true, required: true, description: 'upstream origin, e.g. http://127.0.0.1:3000 (http:// is assumed without a scheme); repeat it for a pool (round robin, retries, health)' },
    from: { type: 'string', value: 'ADDRESS', description: 'where to listen: host:port or :port (every interface); default :8080' },
    admin: { type: 'string', value: 'ADDRESS', description: 'the admin listener (/metrics, /healthz, /readyz); default 127.0.0.1:9090; off: none' },
    'print-config': { type: 'boolean', description: 'print the config on stdout and exit without running' },
  },
  details: `Defaults applied (docs/configuration.md):
  - clients allowed from loopback and private ranges only (ip_filter.allow); others are
    closed with zero bytes
  - rate limits per client IP: 100/min on every path, 10/min on /login* and /api/login*
  - security headers on every answer (HSTS over HTTPS, X-Content-Type-Options, X-Frame-Options,
    Referrer-Policy); the upstream's Server and X-Powered-By are removed
  - every host is served (hosts: ["*"])`,
};

/** Loopback, RFC 1918, and IPv6 unique-local addresses. */
export const PRIVATE_RANGES = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1', 'fc00::/7'];

export interface ProxyOptions {
  readonly from: string;
  readonly to: readonly string[];
  /** null: no admin listener. */
  readonly admin: string | null;
}

/** The config `gatehouse proxy` runs, as the object that is printed (YAML) and loaded. */
export function proxyConfig(o: ProxyOptions): Record<string, unknown> {
  return {
    listen: [{ address: o.from }],
    admin: o.admin === null ? { enabled: false } : { listen: o.admin },
    state: { store: 'memory' },
    sites: [
      {
        id: 'proxy',
        hosts: ['*'],
        upstream: { urls: o.to.map((u) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(u) ? u : `http://${u}`)) },
        ip_filter: { allow: PRIVATE_RANGES },
        rate_limits: [
          { id: 'general', limit: 100, window: '1m' },
          { id: 'login', limit: 10, window: '1m', paths: ['/login*', '/api/login*'] },
        ],
      },
    ],
  };
}

export function proxyConfigYaml(o: ProxyOptions): string {
  return `# gatehouse proxy --from ${o.from} ${o.to.map((t) => `--to ${t}`).join(' ')}\n# Save as gatehouse.yaml and run: gatehouse run --config gatehouse.yaml (reference: docs/configuration.md)\n${stringify(proxyConfig(o))}`;
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const to = p.values.to as string[];
  const admin = (p.values.admin as string | undefined) ?? '127.0.0.1:9090';
  const o: ProxyOptions = { from: (p.values.from as string | undefined) ?? ':8080', to, admin: admin === 'off' ? null : admin };
  const printOnly = p.values['print-config'] === true;
  const yaml = proxyConfigYaml(o);
  let gw: Gateway;
  try {
    // Validated exactly as a file would be; relative paths (state.dir) resolve from here.
    const loaded = parseConfig(yaml, resolve('gatehouse-proxy.yaml'));
    if (printOnly) {
      process.stdout.write(yaml);
      return 0;
    }
    gw = await Gateway.start({ loaded, watch: false });
  } catch (err) {
    if (err instanceof ConfigError) {
      return p.usageError(`these options make an invalid config\n${formatProblems(err.problems)}`);
    }
    process.stderr.write(`gatehouse proxy: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  const a = gw.addresses();
  const listen = a.public.map((p) => `${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}`).join(', ');
  process.stderr.write(
    [
      `gatehouse proxy: listening on ${listen} → ${o.to.join(', ')}${a.admin ? ` (admin ${a.admin.address}:${a.admin.port})` : ''}`,
      'The equivalent config (save it and run `gatehouse run --config FILE` to take it over):',
      '',
      yaml,
      'Logs (JSON, one line per request) follow on stdout. Ctrl-C stops (graceful drain).',
      '',
    ].join('\n'),
  );
  return serveUntilSignal(gw);
}
