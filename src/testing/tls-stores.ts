/**
 * Private TLS-enabled stores for the store-TLS tests: a redis-server with only a TLS port,
 * and a PostgreSQL cluster (initdb into a temp dir, run as the `postgres` user since
 * PostgreSQL refuses to run as root) with ssl=on and plain-text connections refused.
 * Both use certificates the test issues from its internal CA.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/** Fails in CI; elsewhere prints why and returns false (the tests then skip themselves). */
function skipOrFail(reason: string): false {
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.log(`# skipping: ${reason}`);
  return false;
}

function waitPort(port: number, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((ok, fail) => {
    const attempt = () => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        ok();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) fail(new Error(`port ${port} did not open`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export interface TlsStore {
  readonly port: number;
  stop(): Promise<void>;
}

/** A redis-server serving TLS only; `clientCa` set: clients must present a certificate from it. */
export async function startTlsRedis(opts: { certPem: string; keyPem: string; clientCa?: string }): Promise<TlsStore | false> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return skipOrFail('redis-server binary not found');
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-tls-'));
  writeFileSync(join(dir, 'server.crt'), opts.certPem);
  writeFileSync(join(dir, 'server.key'), opts.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'ca.crt'), opts.clientCa ?? opts.certPem);
  const port = await freePort();
  const args = ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt'),
    '--tls-auth-clients', opts.clientCa ? 'yes' : 'no'];
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  await waitPort(port);
  return {
    port,
    stop: () =>
      new Promise<void>((ok) => {
        if (child.exitCode !== null) return ok();
        child.once('exit', () => ok());
        child.kill('SIGKILL');
      }),
  };
}

function pgBin(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] !== undefined ? join(base, versions[0], 'bin') : null;
}

/** A private PostgreSQL with ssl=on that refuses every non-TLS connection (pg_hba `hostnossl ... reject`). */
export async function startTlsPostgres(opts: { certPem: string; keyPem: string }): Promise<TlsStore | false> {
  const bin = pgBin();
  if (bin === null) return skipOrFail('PostgreSQL server binaries (/usr/lib/postgresql/*/bin) not found');
  const pw = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  if (pw.status !== 0) return skipOrFail('no postgres user to run a private PostgreSQL as');
  const uid = Number(pw.stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const asPostgres = (cmd: string, args: string[]) =>
    process.getuid?.() === 0 ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pg-tls-'));
  chmodSync(dir, 0o755);
  if (process.getuid?.() === 0) chownSync(dir, uid, gid);
  const data = join(dir, 'data');
  const init = asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  writeFileSync(join(data, 'server.crt'), opts.certPem);
  writeFileSync(join(data, 'server.key'), opts.keyPem, { mode: 0o600 });
  if (process.getuid?.() === 0) {
    chownSync(join(data, 'server.crt'), uid, gid);
    chownSync(join(data, 'server.key'), uid, gid);
  }
  appendFileSync(
    join(data, 'postgresql.conf'),
    `\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${dir}'\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 20\n`,
  );
  writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n');
  const start = asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr}${start.stdout}`);
  await waitPort(port);
  return {
    port,
    stop: async () => {
      asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    },
  };
}
