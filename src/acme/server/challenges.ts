/**
 * Challenge validation (docs/acme.md#challenges):
 *
 * - http-01 (RFC 8555 §8.3): GET http://<identifier>:<http_port>/.well-known/acme-challenge/<token>
 *   from the address the identifier resolves to; a redirect is followed only to the same
 *   host and port (at most 2), never elsewhere; the body is read up to
 *   max_response_bytes and the whole validation is bounded by `timeout`.
 * - tls-alpn-01 (RFC 8737): a TLS handshake to <address>:<tls_alpn_port> with SNI = the
 *   identifier (RFC 8738: the reverse-DNS name for an IP) and ALPN `acme-tls/1` only; the
 *   self-signed certificate must name exactly the identifier and carry the critical
 *   id-pe-acmeIdentifier extension holding SHA-256(key authorization).
 *
 * Names resolve through the static `resolve` map first (air-gapped networks, tests),
 * else the system resolver (unless static_only).
 */
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { request } from 'node:http';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { AcmeServerConfig } from '../../config/schema.js';
import { AcmeProblem } from './problem.js';
import type { ChallengeType, Identifier } from './store/types.js';

const ACME_IDENTIFIER_OID = '1.3.6.1.5.5.7.1.31';
const MAX_REDIRECTS = 2;

export interface ChallengeValidator {
  /** Resolves when the challenge is met; rejects with an AcmeProblem (connection, incorrectResponse, tls, dns) when not. */
  validate(type: ChallengeType, identifier: Identifier, token: string, keyAuthorization: string): Promise<void>;
}

/** RFC 8738 §6: the SNI for an IP identifier is its reverse-mapping name. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const groups = ip.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail].map((g) => g.padStart(4, '0')).join('');
  return `${full.split('').reverse().join('.')}.ip6.arpa`;
}

export function createChallengeValidator(c: AcmeServerConfig['challenges']): ChallengeValidator {
  const map = new Map(Object.entries(c.resolve).map(([k, v]) => [k.toLowerCase(), v]));

  async function address(identifier: Identifier): Promise<string> {
    if (identifier.type === 'ip') return identifier.value;
    const fixed = map.get(identifier.value);
    if (fixed !== undefined) return fixed;
    if (c.static_only) throw new AcmeProblem('dns', `${identifier.value} is not in the static resolve map`);
    try {
      return (await lookup(identifier.value)).address;
    } catch {
      throw new AcmeProblem('dns', `cannot resolve ${identifier.value}`);
    }
  }

  function httpGet(addr: string, host: string, path: string, deadline: number): Promise<{ status: number; location: string | null; body: string }> {
    return new Promise((ok, fail) => {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return fail(new AcmeProblem('connection', 'validation timed out'));
      const hostHeader = isIP(host) === 6 ? `[${host}]` : host;
      const req = request({ host: addr, port: c.http_port, path, method: 'GET', headers: { host: c.http_port === 80 ? hostHeader : `${hostHeader}:${c.http_port}`, 'user-agent': 'gatehouse-acme', accept: '*/*' }, agent: false, timeout: remaining }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > c.max_response_bytes) {
            req.destroy();
            fail(new AcmeProblem('incorrectResponse', `the response is larger than ${c.max_response_bytes} bytes`));
            return;
          }
          chunks.push(d);
        });
        res.on('end', () => ok({ status: res.statusCode ?? 0, location: typeof res.headers.location === 'string' ? res.headers.location : null, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => fail(new AcmeProblem('connection', 'the response was cut off')));
      });
      const timer = setTimeout(() => {
        req.destroy();
        fail(new AcmeProblem('connection', 'validation timed out'));
      }, remaining);
      req.on('close', () => clearTimeout(timer));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => fail(new AcmeProblem('connection', `cannot fetch the http-01 response from ${host}`)));
      req.end();
    });
  }

  async function http01(identifier: Identifier, token: string, keyAuthz: string): Promise<void> {
    const deadline = Date.now() + c.timeout;
    const addr = await address(identifier);
    let path = `/.well-known/acme-challenge/${token}`;
    for (let hop = 0; ; hop++) {
      const r = await httpGet(addr, identifier.value, path, deadline);
      if (r.status >= 300 && r.status < 400 && r.location !== null) {
        if (hop >= MAX_REDIRECTS) throw new AcmeProblem('connection', 'too many redirects');
        let next: URL;
        try {
          next = new URL(r.location, `http://${isIP(identifier.value) === 6 ? `[${identifier.value}]` : identifier.value}:${c.http_port}${path}`);
        } catch {
          throw new AcmeProblem('connection', 'bad redirect');
        }
        const nextHost = next.hostname.replace(/^\[|\]$/g, '').toLowerCase();
        const nextPort = Number(next.port || (next.protocol === 'https:' ? 443 : 80));
        // Never follow off the identifier: a redirect elsewhere could make the CA fetch from a host the client does not control.
        if (next.protocol !== 'http:' || nextHost !== identifier.value || nextPort !== c.http_port) throw new AcmeProblem('connection', 'redirect away from the identifier refused');
        path = next.pathname + next.search;
        continue;
      }
      if (r.status !== 200) throw new AcmeProblem('incorrectResponse', `the http-01 response status is ${r.status}`);
      if (r.body.trim() !== keyAuthz) throw new AcmeProblem('incorrectResponse', 'the http-01 response is not the key authorization');
      return;
    }
  }

  async function tlsAlpn01(identifier: Identifier, keyAuthz: string): Promise<void> {
    const addr = await address(identifier);
    const sni = identifier.type === 'ip' ? reverseName(identifier.value) : identifier.value;
    const der = await new Promise<Buffer>((ok, fail) => {
      const sock = connect({ host: addr, port: c.tls_alpn_port, servername: sni, ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false, timeout: c.timeout });
      const timer = setTimeout(() => {
        sock.destroy();
        fail(new AcmeProblem('connection', 'validation timed out'));
      }, c.timeout);
      sock.once('secureConnect', () => {
        clearTimeout(timer);
        const proto = sock.alpnProtocol;
        const cert = sock.getPeerCertificate();
        sock.destroy();
        if (proto !== 'acme-tls/1') return fail(new AcmeProblem('tls', 'the server did not negotiate acme-tls/1'));
        if (!cert || !cert.raw) return fail(new AcmeProblem('tls', 'no certificate'));
        ok(cert.raw);
      });
      sock.once('error', () => {
        clearTimeout(timer);
        fail(new AcmeProblem('connection', `cannot connect for tls-alpn-01 to ${identifier.value}`));
      });
    });
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(der);
    } catch {
      throw new AcmeProblem('tls', 'the certificate cannot be parsed');
    }
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const names = san?.names.items ?? [];
    const want = identifier.type === 'ip' ? 'ip' : 'dns';
    if (names.length !== 1 || names[0]?.type !== want || names[0]?.value.toLowerCase() !== identifier.value) throw new AcmeProblem('incorrectResponse', 'the tls-alpn-01 certificate must name exactly the identifier');
    const ext = cert.getExtension(ACME_IDENTIFIER_OID);
    if (!ext || !ext.critical) throw new AcmeProblem('incorrectResponse', 'the tls-alpn-01 certificate lacks the critical acmeIdentifier extension');
    const expect = Buffer.concat([Buffer.from([0x04, 0x20]), createHash('sha256').update(keyAuthz).digest()]);
    if (!Buffer.from(ext.value).equals(expect)) throw new AcmeProblem('incorrectResponse', 'the acmeIdentifier extension does not hold the key authorization digest');
  }

  return {
    async validate(type, identifier, token, keyAuthz) {
      if (type === 'http-01') return http01(identifier, token, keyAuthz);
      return tlsAlpn01(identifier, keyAuthz);
    },
  };
}
