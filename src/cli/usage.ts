/**
 * `gatehouse usage --config FILE [--subject S] [--site ID] [--admin URL] [--json]`: per
 * identity LLM usage so far — tokens charged in each budget window and reserved by calls
 * still running — asked of the running gateway's admin API (`GET /v1/llm/usage`, with
 * `admin.token_file`), which works the same for memory and Redis state
 * (docs/llm.md#usage-so-far). Without `--subject`, every registered identity.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, formatProblems, loadConfig } from '../config/load.js';
import { readSecretFile } from '../config/secrets.js';
import { parseListenAddress } from '../server/address.js';
import type { SiteUsage } from '../stages/llm/usage-report.js';
import { CONFIG_REQUIRED, parseCommand, type CommandSpec } from './args.js';

export const SPEC: CommandSpec = {
  name: 'usage',
  summary: 'Per-identity LLM token usage so far, asked of the running gateway\'s admin API.',
  usage: 'gatehouse usage --config FILE [--subject S] [--site ID] [--admin URL] [--ca-file PEM] [--json]',
  options: {
    config: CONFIG_REQUIRED,
    subject: { type: 'string', value: 'S', description: 'one identity (default: every registered identity)' },
    site: { type: 'string', value: 'ID', description: 'one site' },
    admin: { type: 'string', value: 'URL', description: 'the admin listener (default: from the config)' },
    'ca-file': { type: 'string', value: 'PEM', description: 'CA to verify an HTTPS admin listener' },
    json: { type: 'boolean', description: 'print JSON' },
  },
};

export function formatUsage(rows: readonly SiteUsage[]): string {
  const lines = ['subject\tsite\tgrant\tbudget\tused\treserved\tlimit\tremaining\treset_s'];
  for (const r of rows) {
    for (const b of r.budgets) lines.push([r.subject, r.site, r.grant ?? '-', b.id, b.used, b.reserved, b.limit ?? '-', b.remaining ?? '-', b.reset_s].join('\t'));
  }
  return lines.join('\n');
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommand(SPEC, args);
  if (typeof p === 'number') return p;
  const a = { config: p.values.config as string, values: p.values };
  let loaded;
  try {
    loaded = loadConfig(a.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.file}: invalid\n${formatProblems(err.problems)}\n`);
      return 1;
    }
    throw err;
  }
  const c = loaded.config;
  let base = a.values.admin as string | undefined;
  if (base === undefined) {
    const addr = parseListenAddress(c.admin.listen);
    if (addr === null || !c.admin.enabled) {
      process.stderr.write('gatehouse usage: the admin listener is disabled; give --admin URL\n');
      return 1;
    }
    const host = addr.host === '' || addr.host === '0.0.0.0' ? '127.0.0.1' : addr.host === '::' ? '[::1]' : addr.host.includes(':') ? `[${addr.host}]` : addr.host;
    base = `${c.admin.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  }
  if (c.admin.token_file === undefined) {
    process.stderr.write('gatehouse usage: needs admin.token_file to call the admin API\n');
    return 1;
  }
  const token = readSecretFile(resolve(loaded.dir, c.admin.token_file));
  const q = new URLSearchParams();
  if (typeof a.values.subject === 'string') q.set('subject', a.values.subject);
  if (typeof a.values.site === 'string') q.set('site', a.values.site);
  const { Agent, request } = await import('undici');
  const ca = a.values['ca-file'] as string | undefined;
  const dispatcher = ca !== undefined ? new Agent({ connect: { ca: readFileSync(ca) } }) : undefined;
  try {
    const res = await request(`${base}/v1/llm/usage${q.size > 0 ? `?${q}` : ''}`, { headers: { authorization: `Bearer ${token}` }, dispatcher });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      process.stderr.write(`gatehouse usage: the admin API answered ${res.statusCode}: ${text}\n`);
      return 1;
    }
    const body = JSON.parse(text) as { usage: SiteUsage[] };
    process.stdout.write(`${a.values.json === true ? JSON.stringify(body) : formatUsage(body.usage)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gatehouse usage: cannot reach the admin API at ${base}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await dispatcher?.close();
  }
}
