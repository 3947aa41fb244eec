/**
 * Real ACME clients against gatehouse's ACME server (docs/acme.md#clients): certbot
 * (standalone http-01), lego (http-01 and tls-alpn-01) obtain, renew and revoke; Caddy
 * (acme_ca + acme_ca_root) serves HTTPS with a certificate it got from gatehouse. Every
 * certificate is checked with `openssl verify` against the root, and its lifetime and SANs.
 *
 * Identifiers are names on 127.0.0.22-25 through the server's static resolve map; the
 * challenge ports are ephemeral (production uses 80 and 443). Debian packages certbot,
 * lego and caddy (.ci/run installs them); outside CI a missing one skips its test.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import { baseConfig, sleep, startGateway, startUpstream, type TestGateway, type Upstream } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';

const NAMES: Record<string, string> = { 'certbot.acme.test': '127.0.0.22', 'lego.acme.test': '127.0.0.23', 'alpn.acme.test': '127.0.0.24', 'caddy.acme.test': '127.0.0.25' };

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 120_000): Promise<{ code: number; out: string }> {
  return new Promise((ok) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      ok({ code: err ? ((err as NodeJS.ErrnoException & { code?: number }).code as unknown as number) || 1 : 0, out: `${stdout}\n${stderr}` });
    });
  });
}

async function have(t: TestContext, bin: string): Promise<boolean> {
  const r = await run('sh', ['-c', `command -v ${bin}`]);
  if (r.code === 0) return true;
  if (process.env.CI) throw new Error(`${bin} is missing (required in CI; Debian package ${bin})`);
  t.skip(`${bin} is not installed`);
  return false;
}

/** A port free on every listed loopback address (clients bind their challenge listeners there). */
async function freePort(hosts: string[]): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((ok) => s.listen(0, hosts[0], ok));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((ok) => s.close(() => ok()));
    let free = true;
    for (const h of hosts) {
      const t = createServer();
      free = await new Promise<boolean>((ok) => {
        t.once('error', () => ok(false));
        t.listen(port, h, () => t.close(() => ok(true)));
      });
      if (!free) break;
    }
    if (free) return port;
  }
}

function checkCert(ca: TestCa, chainPem: string, names: string): Promise<X509Certificate> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-acme-verify-'));
  const [leaf, ...rest] = chainPem.split(/(?<=-----END CERTIFICATE-----\n)/);
  writeFileSync(join(dir, 'root.pem'), ca.rootPem);
  writeFileSync(join(dir, 'inter.pem'), rest.join(''));
  writeFileSync(join(dir, 'leaf.pem'), leaf ?? '');
  return new Promise<X509Certificate>((ok, fail) => {
    execFile('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')], (err, stdout) => {
      if (err) return fail(err);
      try {
        assert.match(stdout, /leaf\.pem: OK/);
        const x = new X509Certificate(leaf ?? '');
        assert.equal(x.subjectAltName, names);
        const lifetime = Date.parse(x.validTo) - Date.parse(x.validFrom);
        assert.ok(lifetime > 24 * 3600_000 - 120_000 && lifetime <= 24 * 3600_000 + 61_000, `24h lifetime, got ${lifetime}ms`);
        assert.ok(x.checkIssued(new X509Certificate(rest.join(''))));
        ok(x);
      } catch (e) {
        fail(e);
      }
    });
  });
}

async function revoked(gw: TestGateway): Promise<number> {
  const m = await gw.gw.metrics.registry.getSingleMetricAsString('gatehouse_acme_certificates_revoked_total');
  return [...m.matchAll(/^gatehouse_acme_certificates_revoked_total\{[^}]*\} (\d+)/gm)].reduce((s, x) => s + Number(x[1]), 0);
}

describe('real ACME clients against gatehouse', () => {
  let ca: TestCa;
  let upstream: Upstream;
  let gw: TestGateway;
  let directory: string;
  let httpPort: number;
  let tlsPort: number;
  let rootFile: string;

  before(async () => {
    ca = await createTestCa();
    upstream = await startUpstream();
    httpPort = await freePort(Object.values(NAMES));
    tlsPort = await freePort(Object.values(NAMES));
    rootFile = join(ca.dir, 'root.pem');
    writeFileSync(rootFile, ca.rootPem);
    gw = await startGateway(
      baseConfig(upstream.url, {}, {
        ca: { dir: ca.caDir, password_file: ca.passwordFile },
        state: { dir: mkdtempSync(join(tmpdir(), 'gatehouse-acme-')) },
        acme_server: {
          listen: '127.0.0.1:0',
          names: ['127.0.0.1'],
          identifiers: { dns_suffixes: ['.acme.test'] },
          // Clients renew by ordering again; reuse would skip the challenge they expect to serve.
          authorization_reuse: 0,
          challenges: { http_port: httpPort, tls_alpn_port: tlsPort, timeout: '5s', resolve: NAMES, static_only: true },
        },
      }),
    );
    directory = (gw.gw.acme as NonNullable<typeof gw.gw.acme>).directoryUrl;
  });
  after(async () => {
    await gw.close();
    await upstream.close();
  });

  it('certbot: standalone http-01 obtains, renews and revokes', async (t) => {
    if (!(await have(t, 'certbot'))) return;
    const d = mkdtempSync(join(tmpdir(), 'gatehouse-certbot-'));
    const common = ['--non-interactive', '--server', directory, '--config-dir', join(d, 'etc'), '--work-dir', join(d, 'work'), '--logs-dir', join(d, 'log')];
    const env = { REQUESTS_CA_BUNDLE: rootFile };
    const obtain = ['certonly', ...common, '--standalone', '--agree-tos', '--email', 'ops@acme.test', '--no-eff-email', '--key-type', 'ecdsa', '--http-01-address', NAMES['certbot.acme.test'] as string, '--http-01-port', String(httpPort), '-d', 'certbot.acme.test'];
    const r1 = await run('certbot', obtain, env);
    assert.equal(r1.code, 0, r1.out);
    const live = join(d, 'etc', 'live', 'certbot.acme.test');
    const first = await checkCert(ca, readFileSync(join(live, 'fullchain.pem'), 'utf8'), 'DNS:certbot.acme.test');
    const r2 = await run('certbot', [...obtain, '--force-renewal'], env);
    assert.equal(r2.code, 0, r2.out);
    const second = await checkCert(ca, readFileSync(join(live, 'fullchain.pem'), 'utf8'), 'DNS:certbot.acme.test');
    assert.notEqual(second.serialNumber, first.serialNumber, 'renewed: a new certificate');
    const before = await revoked(gw);
    const r3 = await run('certbot', ['revoke', ...common, '--cert-path', join(live, 'cert.pem'), '--no-delete-after-revoke', '--reason', 'superseded'], env);
    assert.equal(r3.code, 0, r3.out);
    assert.equal(await revoked(gw), before + 1);
    const again = await run('certbot', ['revoke', ...common, '--cert-path', join(live, 'cert.pem'), '--no-delete-after-revoke'], env);
    assert.notEqual(again.code, 0, 'revoking twice fails');
    // certbot 2.1 masks the server's problem behind a josepy AttributeError on stdout; its log has the problem type.
    assert.match(readFileSync(join(d, 'log', 'letsencrypt.log'), 'utf8'), /urn:ietf:params:acme:error:alreadyRevoked/);
  });

  for (const mode of ['http', 'tls'] as const) {
    it(`lego: ${mode === 'http' ? 'http-01' : 'tls-alpn-01'} obtains, renews and revokes`, async (t) => {
      if (!(await have(t, 'lego'))) return;
      const name = mode === 'http' ? 'lego.acme.test' : 'alpn.acme.test';
      const d = mkdtempSync(join(tmpdir(), 'gatehouse-lego-'));
      const challenge = mode === 'http' ? ['--http', '--http.port', `${NAMES[name]}:${httpPort}`] : ['--tls', '--tls.port', `${NAMES[name]}:${tlsPort}`];
      const common = ['--server', directory, '--email', 'ops@acme.test', '--accept-tos', '--path', d, '--domains', name, ...challenge];
      const env = { LEGO_CA_CERTIFICATES: rootFile };
      const r1 = await run('lego', [...common, 'run'], env);
      assert.equal(r1.code, 0, r1.out);
      const crt = join(d, 'certificates', `${name}.crt`);
      const first = await checkCert(ca, readFileSync(crt, 'utf8'), `DNS:${name}`);
      const r2 = await run('lego', [...common, 'renew', '--days', '30', '--no-random-sleep'], env);
      assert.equal(r2.code, 0, r2.out);
      const second = await checkCert(ca, readFileSync(crt, 'utf8'), `DNS:${name}`);
      assert.notEqual(second.serialNumber, first.serialNumber, 'renewed: a new certificate');
      const before = await revoked(gw);
      const r3 = await run('lego', [...common, 'revoke'], env);
      assert.equal(r3.code, 0, r3.out);
      assert.equal(await revoked(gw), before + 1);
    });
  }

  it('Caddy with acme_ca and acme_ca_root serves HTTPS with a certificate from gatehouse', async (t) => {
    if (!(await have(t, 'caddy'))) return;
    const d = mkdtempSync(join(tmpdir(), 'gatehouse-caddy-'));
    const caddyfile = join(d, 'Caddyfile');
    writeFileSync(
      caddyfile,
      `{
  admin off
  http_port ${httpPort}
  https_port ${tlsPort}
  default_bind ${NAMES['caddy.acme.test']}
  acme_ca ${directory}
  acme_ca_root ${rootFile}
  email ops@acme.test
  storage file_system ${join(d, 'storage')}
  skip_install_trust
  ocsp_stapling off
}
caddy.acme.test {
  respond "served by caddy"
}
`,
    );
    const child = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { env: { ...process.env, HOME: d, XDG_DATA_HOME: d, XDG_CONFIG_HOME: d }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    try {
      let reply: Awaited<ReturnType<typeof httpsGetAt>> | null = null;
      const end = Date.now() + 60_000;
      while (Date.now() < end) {
        try {
          reply = await httpsGetAt(NAMES['caddy.acme.test'] as string, tlsPort, ca.rootPem, 'caddy.acme.test');
          break;
        } catch {
          await sleep(500);
        }
      }
      assert.ok(reply, `Caddy never served HTTPS with a trusted certificate:\n${log.slice(-4000)}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'served by caddy');
      const certDir = join(d, 'storage', 'certificates');
      const found = await run('sh', ['-c', `find ${certDir} -name 'caddy.acme.test.crt'`]);
      const pem = readFileSync(found.out.trim().split('\n')[0] as string, 'utf8');
      const leaf = await checkCert(ca, pem, 'DNS:caddy.acme.test');
      assert.equal(leaf.serialNumber.toUpperCase(), reply.serial, 'the certificate Caddy serves is the one gatehouse issued');
    } finally {
      child.kill('SIGTERM');
      await new Promise((ok) => child.once('exit', ok));
    }
  });
});

/** httpsGet to a given loopback address (the test helper connects to 127.0.0.1). */
function httpsGetAt(host: string, port: number, ca: string, servername: string): Promise<{ status: number; body: string; serial: string }> {
  return import('node:https').then(
    ({ request }) =>
      new Promise((ok, fail) => {
        const req = request({ host, port, servername, path: '/', headers: { host: servername }, ca, agent: false, timeout: 3000 }, (res) => {
          const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
          let body = '';
          res.on('data', (b: Buffer) => (body += b.toString()));
          res.on('end', () => ok({ status: res.statusCode ?? 0, body, serial: cert.serialNumber?.toUpperCase() ?? '' }));
        });
        req.on('error', fail);
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.end();
      }),
  );
}
