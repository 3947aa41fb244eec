/**
 * Pebble (Let's Encrypt's test ACME server, Debian package `pebble`) on loopback for the
 * ACME client tests. It really validates: its DNS questions go to pebble-challtestsrv
 * (same package) answering every A query with the gateway's loopback address, and its
 * validation connects there on the configured httpPort (http-01) and tlsPort
 * (tls-alpn-01). Its HTTPS API presents a certificate from a throwaway test CA (the
 * `caRootFile` a config gives as ca_root); the root it issues from is at the management
 * port's /roots/0. Addresses: Pebble and its DNS on 127.0.0.30, the gateway on 127.0.0.31.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createTestCa } from './tls.js';

export const PEBBLE_HOST = '127.0.0.30';
export const GATEWAY_HOST = '127.0.0.31';

/**
 * Why the Pebble tests cannot run here (`describe(…, { skip: pebbleMissing() })`), or false
 * when Pebble is installed. Under CI its absence fails the file (`.ci/run` installs it).
 * Decided for the whole suite, not in a `before` hook: a hook's context cannot skip its
 * suite, and the tests after it would run against nothing.
 */
export function pebbleMissing(): string | false {
  const ok = spawnSync('pebble', ['-h']).error === undefined && spawnSync('pebble-challtestsrv', ['-h']).error === undefined;
  if (ok) return false;
  const reason = 'pebble not found (Debian package pebble; .ci/run installs it)';
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.log(`# skipping: ${reason}`);
  return reason;
}

/** A TCP port free on `host` now (bound and released): Pebble's config needs ports before anything listens. */
export function freePort(host: string): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? ok(a.port) : fail(new Error('no port'))));
    });
  });
}

export interface Pebble {
  readonly directory: string;
  /** PEM of the CA that signed Pebble's HTTPS certificate (give it as ca_root). */
  readonly caRootFile: string;
  readonly caRootPem: string;
  readonly httpPort: number;
  readonly tlsPort: number;
  /** The root Pebble issues from (fetched from the management port). */
  issuingRoot(): Promise<string>;
  /** Stops Pebble (the CA is down); `start()` brings it back with a new issuing root, like Pebble always does. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function waitUp(url: string, agent: Agent, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await request(url, { dispatcher: agent });
      await r.body.text();
      if (r.statusCode === 200) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startPebble(opts: { httpPort: number; tlsPort: number; eab?: { kid: string; hmacKey: string } }): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pebble-'));
  const ca = await createTestCa();
  const issued = await ca.issue({ name: 'pebble', dnsNames: ['localhost'], ips: [PEBBLE_HOST], lifetimeMs: 86_400_000, server: true, client: false });
  writeFileSync(join(dir, 'cert.pem'), issued.chainPem);
  writeFileSync(join(dir, 'key.pem'), issued.keyPem, { mode: 0o600 });
  const caRootFile = join(dir, 'ca-root.pem');
  writeFileSync(caRootFile, ca.rootPem);
  const [port, mgmt, dns, dnsMgmt] = [await freePort(PEBBLE_HOST), await freePort(PEBBLE_HOST), await freePort(PEBBLE_HOST), await freePort(PEBBLE_HOST)];
  const config = {
    pebble: {
      listenAddress: `${PEBBLE_HOST}:${port}`,
      managementListenAddress: `${PEBBLE_HOST}:${mgmt}`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: opts.eab !== undefined,
      ...(opts.eab ? { externalAccountMACKeys: { [opts.eab.kid]: opts.eab.hmacKey } } : {}),
    },
  };
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify(config));
  const agent = new Agent({ connect: { ca: ca.rootPem } });
  // Every name resolves to the gateway's address; no AAAA answers, so validation uses IPv4.
  const dnsProc = spawn('pebble-challtestsrv', ['-dns01', `${PEBBLE_HOST}:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `${PEBBLE_HOST}:${dnsMgmt}`, '-defaultIPv4', GATEWAY_HOST, '-defaultIPv6', ''], { stdio: 'ignore' });
  let proc: ChildProcess | null = null;
  const log: string[] = [];
  const start = async () => {
    // NOSLEEP: validate at once. NONCEREJECT=0: no random badNonce. Validation itself is real.
    const p = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `${PEBBLE_HOST}:${dns}`], { env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout?.on('data', (c: Buffer) => log.push(c.toString()));
    p.stderr?.on('data', (c: Buffer) => log.push(c.toString()));
    proc = p;
    try {
      await waitUp(`https://${PEBBLE_HOST}:${port}/dir`, agent);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${log.join('')}`);
    }
  };
  const stop = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((ok) => {
      p.once('exit', () => ok());
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    directory: `https://${PEBBLE_HOST}:${port}/dir`,
    caRootFile,
    caRootPem: ca.rootPem,
    httpPort: opts.httpPort,
    tlsPort: opts.tlsPort,
    async issuingRoot() {
      const r = await request(`https://${PEBBLE_HOST}:${mgmt}/roots/0`, { dispatcher: agent });
      return r.body.text();
    },
    stop,
    start,
    async close() {
      await stop();
      dnsProc.kill('SIGTERM');
      await agent.close();
    },
  };
}
