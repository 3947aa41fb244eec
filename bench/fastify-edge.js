#!/usr/bin/env node
// Scenario (d) of the benchmark: the "assemble it yourself" edge that gatehouse is compared with.
// fastify 5 + @fastify/http-proxy + @fastify/rate-limit (in-memory) + @fastify/helmet, doing the
// same work as gatehouse's full edge pipeline in scenario (c):
//   - IP allowlist (127.0.0.0/8 and ::1) in an onRequest hook; anything else has its socket destroyed
//   - per-IP rate limit that never triggers (max 1e9 per minute, in-memory store)
//   - security headers: HSTS (1 year, includeSubDomains, preload), X-Frame-Options SAMEORIGIN,
//     X-Content-Type-Options nosniff, Referrer-Policy strict-origin-when-cross-origin, and
//     Permissions-Policy (added in an onSend hook); the Server header is removed
//   - reverse proxy of everything to the upstream, with X-Forwarded-For/-Proto/-Host added
//
// With JWT_PUBLIC_KEY_FILE set (scenario f, the identity comparison) it also does what
// gatehouse's identity pipeline does in scenario e: @fastify/jwt verifies an RS256 bearer
// token on EVERY request (algorithms [RS256], iss and aud checked, exp required), a jti
// revocation-set lookup, the identity (sub) forwarded upstream in X-Gatehouse-Subject with the
// caller's Authorization removed, and a per-identity rate limit (keyed by sub, 1e9/min,
// never triggers) in place of the per-IP one.
//
// Usage: node bench/fastify-edge.js [port] [upstream-url]
//   or   PORT=18082 UPSTREAM=http://127.0.0.1:18000 node bench/fastify-edge.js
// Listens on 127.0.0.1 (HOST to change). Prints "fastify-edge listening on ..." when ready.
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';
import rateLimit from '@fastify/rate-limit';
import helmet from '@fastify/helmet';
import fs from 'node:fs';

const jwtKeyFile = process.env.JWT_PUBLIC_KEY_FILE;

const port = Number(process.argv[2] ?? process.env.PORT ?? 18082);
const upstream = process.argv[3] ?? process.env.UPSTREAM ?? 'http://127.0.0.1:18000';
const host = process.env.HOST ?? '127.0.0.1';

// --- IP allowlist: 127.0.0.0/8 and ::1 (IPv4-mapped IPv6 forms of 127/8 count too) ---------------
function ipv4ToInt(s) {
  const p = s.split('.');
  if (p.length !== 4) return -1;
  let n = 0;
  for (const part of p) {
    const v = Number(part);
    if (!(part.length > 0 && part.length <= 3 && v >= 0 && v <= 255)) return -1;
    n = n * 256 + v;
  }
  return n;
}
const ALLOW_V4 = [{ net: ipv4ToInt('127.0.0.0'), mask: 0xff000000 }];
function allowed(ip) {
  if (typeof ip !== 'string') return false;
  if (ip === '::1') return true;
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  const n = ipv4ToInt(v4);
  if (n < 0) return false;
  for (const r of ALLOW_V4) if (((n & r.mask) >>> 0) === r.net) return true;
  return false;
}

const PERMISSIONS_POLICY = 'geolocation=(), microphone=(), camera=()';

const app = Fastify({
  logger: false,
  trustProxy: false,
  keepAliveTimeout: 5000, // gatehouse's default http.keep_alive_timeout
  // Proxy bodies are streamed; this mirrors gatehouse's max_body_bytes default (10 MiB).
  bodyLimit: 10 * 1024 * 1024,
});

// Registered first so it runs before the rate limiter's onRequest hook (cheap refusal first).
app.addHook('onRequest', (request, reply, done) => {
  if (!allowed(request.ip)) {
    reply.hijack();
    request.raw.socket.destroy();
    return;
  }
  done();
});

const revoked = new Set(); // jti revocation set, checked per request (empty: nothing revoked)
if (jwtKeyFile) {
  const { default: fastifyJwt } = await import('@fastify/jwt');
  await app.register(fastifyJwt, {
    secret: { public: fs.readFileSync(jwtKeyFile, 'utf8') },
    verify: { algorithms: ['RS256'], allowedIss: 'https://bench.local', allowedAud: 'gatehouse', requiredClaims: ['exp'] },
  });
  // Registered before the rate limiter so the limiter can key by identity.
  app.addHook('onRequest', async (request, reply) => {
    try {
      await request.jwtVerify();
    } catch {
      reply.code(401).send({ error: { code: 'invalid_token' } });
      return reply;
    }
    if (revoked.has(request.user.jti)) {
      reply.code(401).send({ error: { code: 'token_revoked' } });
      return reply;
    }
  });
}

await app.register(rateLimit, {
  global: true,
  max: 1_000_000_000,
  timeWindow: '1 minute',
  // default store: in-memory LRU, keyed by request.ip (by identity in the JWT variant)
  ...(jwtKeyFile ? { keyGenerator: (request) => request.user?.sub ?? request.ip } : {}),
});

await app.register(helmet, {
  global: true,
  // Only the headers the comparison calls for (gatehouse's default set); helmet's other
  // middlewares are switched off so (d) does not do extra work that (c) does not.
  contentSecurityPolicy: false,
  crossOriginEmbedderPolicy: false,
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  dnsPrefetchControl: false,
  ieNoOpen: false,
  permittedCrossDomainPolicies: false,
  xssFilter: false,
  hidePoweredBy: true,
  hsts: { maxAge: 31536000, includeSubDomains: true, preload: true },
  frameguard: { action: 'sameorigin' },
  noSniff: true,
  referrerPolicy: { policy: 'strict-origin-when-cross-origin' },
});

app.addHook('onSend', (request, reply, payload, done) => {
  reply.header('permissions-policy', PERMISSIONS_POLICY);
  reply.removeHeader('server');
  done(null, payload);
});

await app.register(httpProxy, {
  upstream,
  prefix: '/',
  http2: false,
  replyOptions: {
    rewriteRequestHeaders: (request, headers) => {
      const out = {
        ...headers,
        'x-forwarded-for': request.ip,
        'x-forwarded-proto': 'http',
        'x-forwarded-host': headers.host ?? '',
      };
      if (jwtKeyFile) {
        delete out.authorization;
        out['x-gatehouse-subject'] = request.user.sub;
        out['x-gatehouse-identity-type'] = request.user.type;
      }
      return out;
    },
  },
});

await app.listen({ port, host });
process.stdout.write(`fastify-edge listening on http://${host}:${port} -> ${upstream}\n`);

let closing = false;
async function stop() {
  if (closing) return;
  closing = true;
  const t = setTimeout(() => process.exit(0), 2000);
  t.unref();
  try {
    await app.close();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
