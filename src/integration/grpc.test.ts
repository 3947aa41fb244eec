/**
 * gRPC through gatehouse (docs/lifecycle.md#http2): a @grpc/grpc-js client over TLS + h2
 * to the gateway, a @grpc/grpc-js server upstream spoken to over HTTP/2 (`upstream.http2`,
 * h2c), unary and server-streaming calls with their trailers (grpc-status, custom
 * trailing metadata), a bearer token verified and a Cedar policy decision applied.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startGateway, type TestGateway } from '../testing/harness.js';
import { createTestCa, type TestCa } from '../testing/tls.js';
import { keyDir, makeKey, sign } from '../testing/tokens.js';

const PROTO = `syntax = "proto3";
package demo;
message Msg { string text = 1; int32 n = 2; }
service Echo {
  rpc Say (Msg) returns (Msg);
  rpc Count (Msg) returns (stream Msg);
  rpc Missing (Msg) returns (Msg);
  rpc Secret (Msg) returns (Msg);
}
`;

// Calls must carry a verified token (auth: {}); the policy refuses the Secret method.
// context.path is the normalized (case-folded) path policies match on.
const POLICY = `permit (principal, action == Action::"POST", resource) when { context.path like "/demo.echo/*" };
forbid (principal, action, resource) when { context.path == "/demo.echo/secret" };
`;

interface Msg {
  text: string;
  n: number;
}
type EchoClient = grpc.Client & {
  Say(m: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  Missing(m: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  Secret(m: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  Count(m: Msg, md: grpc.Metadata): grpc.ClientReadableStream<Msg>;
};

describe('gRPC through gatehouse over HTTP/2', () => {
  let ca: TestCa;
  let server: grpc.Server;
  let gw: TestGateway;
  let client: EchoClient;
  let token: string;
  const seenSubjects: string[] = [];

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-grpc-'));
    writeFileSync(join(dir, 'echo.proto'), PROTO);
    writeFileSync(join(dir, 'grpc.cedar'), POLICY);
    const def = protoLoader.loadSync(join(dir, 'echo.proto'));
    const pkg = grpc.loadPackageDefinition(def) as unknown as { demo: { Echo: grpc.ServiceClientConstructor } };
    const service = pkg.demo.Echo.service;
    server = new grpc.Server();
    server.addService(service, {
      Say(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
        seenSubjects.push(String(call.metadata.get('x-gatehouse-subject')[0] ?? ''));
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'from-upstream');
        cb(null, { text: `hello ${call.request.text}`, n: 1 }, trailer);
      },
      Count(call: grpc.ServerWritableStream<Msg, Msg>) {
        for (let i = 1; i <= call.request.n; i++) call.write({ text: call.request.text, n: i });
        call.end();
      },
      Missing(_call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      },
      Secret(_call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
        cb(null, { text: 'secret', n: 0 });
      },
    });
    const upPort = await new Promise<number>((ok, fail) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : ok(p))));
    ca = await createTestCa();
    const key = makeKey(keyDir(), 'k1', 'ES256');
    token = await sign(key, { sub: 'svc-a', type: 'agent' });
    gw = await startGateway({
      listen: [{ address: '127.0.0.1:0', tls: { internal_ca: true } }],
      admin: { listen: '127.0.0.1:0' },
      ca: { dir: ca.caDir, password_file: ca.passwordFile },
      auth: { issuers: [{ id: 'main', iss: 'https://issuer.test', audiences: ['gatehouse'], keys: [{ kid: key.kid, file: key.file }] }] },
      identities: { unknown_identity: 'allow' },
      sites: [{ id: 'grpc', hosts: ['localhost'], upstream: { urls: [`http://127.0.0.1:${upPort}`], http2: true }, auth: {}, policy: { files: [join(dir, 'grpc.cedar')] } }],
    });
    const port = (gw.gw.addresses().public[0] as AddressInfo).port;
    client = new pkg.demo.Echo(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(ca.rootPem))) as unknown as EchoClient;
  });
  after(async () => {
    client?.close();
    await gw?.close();
    server?.forceShutdown();
  });

  const md = (t: string | null) => {
    const m = new grpc.Metadata();
    if (t !== null) m.set('authorization', `Bearer ${t}`);
    return m;
  };

  it('unary: the answer and its trailers (grpc-status, trailing metadata) pass end to end; the upstream sees the verified subject', async () => {
    let trailers: grpc.Metadata | null = null;
    const r = await new Promise<Msg>((ok, fail) => {
      const call = client.Say({ text: 'world', n: 0 }, md(token), (err, res) => (err ? fail(err) : ok(res as Msg)));
      call.on('status', (st: grpc.StatusObject) => {
        trailers = st.metadata;
      });
    });
    assert.equal(r.text, 'hello world');
    await new Promise((ok) => setTimeout(ok, 50));
    assert.deepEqual((trailers as grpc.Metadata | null)?.get('x-trailer'), ['from-upstream']);
    assert.deepEqual(seenSubjects, ['svc-a']);
    const line = gw.logs.find((l) => l.msg === 'request' && l.path === '/demo.Echo/Say');
    assert.equal(line?.protocol, 'h2');
    assert.equal(line?.subject, 'svc-a');
  });

  it('server streaming: every message arrives, then the OK status', async () => {
    const got: number[] = [];
    const status = await new Promise<grpc.StatusObject>((ok, fail) => {
      const call = client.Count({ text: 'x', n: 5 }, md(token));
      call.on('data', (m: Msg) => got.push(m.n));
      call.on('status', ok);
      call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.OK ? undefined : fail(err)));
    });
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
  });

  it("an upstream error status (NOT_FOUND with details) reaches the client as the upstream's", async () => {
    const err = await new Promise<grpc.ServiceError>((ok) => client.Missing({ text: '', n: 0 }, md(token), (e) => ok(e as grpc.ServiceError)));
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(err.details, 'no such thing');
  });

  it('without a token: UNAUTHENTICATED (401); a method the policy forbids: PERMISSION_DENIED (403); neither reaches the upstream', async () => {
    const before = seenSubjects.length;
    const anon = await new Promise<grpc.ServiceError>((ok) => client.Say({ text: 'x', n: 0 }, md(null), (e) => ok(e as grpc.ServiceError)));
    assert.equal(anon.code, grpc.status.UNAUTHENTICATED);
    const denied = await new Promise<grpc.ServiceError>((ok) => client.Secret({ text: 'x', n: 0 }, md(token), (e) => ok(e as grpc.ServiceError)));
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.equal(seenSubjects.length, before);
    // The log line is written when the stream closes, just after the client has its answer.
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && line === undefined; i++) {
      line = gw.logs.find((l) => l.msg === 'request' && l.path === '/demo.Echo/Secret');
      if (line === undefined) await new Promise((ok) => setTimeout(ok, 20));
    }
    assert.equal(line?.stage, 'policy');
    assert.equal(line?.code, 'policy_denied');
  });
});
