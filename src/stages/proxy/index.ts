/**
 * The proxy: forwards an admitted exchange to the site's upstream with undici and streams
 * both bodies without buffering, with backpressure in both directions (a slow client
 * pauses the upstream read; undici pauses the client read). It is the only writer of
 * proxied responses; refusals go through pipeline/respond.ts, so both carry the same
 * security headers.
 *
 * The upstream is a pool (balancer.ts, member.ts): each attempt goes to one healthy member;
 * a failed attempt may be sent again to another member, within the retry budget, when
 * that cannot repeat work the upstream may have done (docs/lifecycle.md#retries).
 *
 * Limits enforced while streaming: a request body without a declared length is counted
 * (413 once it passes the site's limit), and a body that stops arriving for
 * `http.body_idle_timeout` gets 408 and a closed connection.
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamConfig } from '../../config/schema.js';
import type { ErrorCode } from '../../errors/codes.js';
import { connectionOf } from '../../pipeline/connection.js';
import type { GatewayContext } from '../../pipeline/context.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import { rawResponse, refuse } from '../../pipeline/respond.js';
import type { SiteProxy } from '../../pipeline/site.js';
import { buildResponseHeaders, securityHeaders, type HeaderPolicy } from '../headers/index.js';
import type { IdentityForwarding } from '../token/forward.js';
import type { CompiledReading } from '../request/index.js';
import { upstreamRequestHeaders, type UpstreamHeaderOptions } from './request-headers.js';
import type { UpstreamBalancer } from './balancer.js';
import { strippedPath, type CompiledStrip } from './forward-path.js';
import { failureReason, type FailureReason, type UpstreamMember } from './member.js';

export const PROXY = 'proxy';
const EXPECTATION_FAILED = new Refusal('expectation_failed', PROXY, 'expect');
const ZONE_VIOLATION = new Refusal('zone_violation', PROXY, 'zone');
const NO_HEALTHY = new Refusal('no_healthy_upstream', PROXY);
/** strip_prefix would forward a path that does not normalize to what the controls saw. */
const STRIP_MISMATCH = new Refusal('bad_request', PROXY, 'strip_prefix');
/** Methods whose repetition has the effect of one request (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const RETRY_STATUSES: Record<number, FailureReason> = { 502: 'status_502', 503: 'status_503', 504: 'status_504' };
/** The abort that ends an answer the proxy replaces with a retry. */
class RetryAbort extends Error {}

class BodyLimitError extends Error {
  readonly code = 'body_too_large';
}
class BodyTimeoutError extends Error {
  readonly code = 'request_timeout';
}

/** Certificate verification and handshake failures of https:// upstreams (node:tls / OpenSSL codes). */
const TLS_FAILURES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const UNAVAILABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);

/** Maps an upstream failure (before any response byte) to the client's error code. */
export function upstreamErrorCode(err: unknown): ErrorCode {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'body_too_large') return 'body_too_large';
  if (code === 'request_timeout') return 'request_timeout';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'upstream_timeout';
  if (code !== undefined && (TLS_FAILURES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))) return 'upstream_tls_error';
  if (code !== undefined && UNAVAILABLE.has(code)) return 'upstream_unavailable';
  return 'upstream_error';
}

async function* countedBody(ex: Exchange, limit: number, timer: () => NodeJS.Timeout | null, abort: (err: Error) => void): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of ex.req as AsyncIterable<Buffer>) {
      ex.bytesIn += chunk.length;
      if (ex.bytesIn > limit) {
        const err = new BodyLimitError(`request body exceeded ${limit} bytes`);
        abort(err);
        throw err;
      }
      timer()?.refresh();
      yield chunk;
    }
  } finally {
    const t = timer();
    if (t !== null) clearTimeout(t);
  }
}

export interface ProxyOptions {
  readonly siteId: string;
  /** The site's upstream pool (members, balancing, retry budget). */
  readonly balancer: UpstreamBalancer;
  /** `upstream.retry`: how often and on which failures an attempt goes to another member. */
  readonly retry: UpstreamConfig['retry'];
  /** The site's `strip_prefix`, compiled; null: the path is forwarded whole. */
  readonly strip?: CompiledStrip | null;
  readonly headers: HeaderPolicy;
  readonly ctx: GatewayContext;
  readonly maxBodyBytes: number;
  readonly bodyIdleTimeoutMs: number;
  readonly requestIdHeader: string;
  /** Identity headers and Authorization handling towards the upstream (stages/token/forward.ts). */
  readonly identityForwarding?: IdentityForwarding | null;
  /** The upstream's zone is not one the site may reach: refuse before connecting (docs/policy.md). */
  readonly zoneViolation?: boolean;
  /** What the proxy does with header names containing `_` (the site's `request.header_underscores`). */
  readonly headerUnderscores?: CompiledReading['headerUnderscores'];
}

export function createProxy(opts: ProxyOptions): SiteProxy {
  const { balancer, headers: policy, ctx, siteId, maxBodyBytes, bodyIdleTimeoutMs } = opts;
  const strip = opts.strip ?? null;
  const retryOn = new Set<string>(opts.retry.on);
  const maxRetries = opts.retry.max;
  const retried = ctx.metrics.upstreamRetries.labels(siteId, 'retried');
  const budgetExhausted = ctx.metrics.upstreamRetries.labels(siteId, 'budget_exhausted');

  /** The path and query the upstream gets, before the member's base path; null: refuse (strip_prefix). */
  function forwardTarget(ex: Exchange): string | null {
    let path = ex.path;
    if (strip !== null) {
      const p = strippedPath(ex.path, ex.normPath, strip);
      if (p === null) return null;
      path = p;
    }
    return ex.query === '' ? path : `${path}?${ex.query}`;
  }
  const headerOpts: UpstreamHeaderOptions = {
    requestIdHeaderLower: opts.requestIdHeader.toLowerCase(),
    identity: opts.identityForwarding ?? null,
    headerUnderscores: opts.headerUnderscores ?? 'drop',
  };
  const upstreamErrors = {
    upstream_unavailable: ctx.metrics.upstreamErrors.labels(siteId, 'upstream_unavailable'),
    upstream_timeout: ctx.metrics.upstreamErrors.labels(siteId, 'upstream_timeout'),
    upstream_error: ctx.metrics.upstreamErrors.labels(siteId, 'upstream_error'),
    upstream_tls_error: ctx.metrics.upstreamErrors.labels(siteId, 'upstream_tls_error'),
  };

  function fail(ex: Exchange, err: unknown): void {
    const code = upstreamErrorCode(err);
    if (code === 'upstream_unavailable' || code === 'upstream_timeout' || code === 'upstream_error' || code === 'upstream_tls_error') upstreamErrors[code].inc();
    const stage = code === 'body_too_large' || code === 'request_timeout' ? 'request_limits' : PROXY;
    refuse(ctx, ex, policy, new Refusal(code, stage, undefined, undefined, err));
  }

  function handle(ex: Exchange): void {
    const req = ex.req;
    if (ex.res === null) return;
    const res: import('node:http').ServerResponse = ex.res;
    if (opts.zoneViolation === true) return refuse(ctx, ex, policy, ZONE_VIOLATION);
    const target = forwardTarget(ex);
    if (target === null) return refuse(ctx, ex, policy, STRIP_MISMATCH);
    const t0 = performance.now();
    balancer.countRequest(Date.now());
    const first = balancer.pick(ex, null);
    if (first === null) return refuse(ctx, ex, policy, NO_HEALTHY);
    const cl = req.headers['content-length'];
    const hasBody = cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
    const idempotent = IDEMPOTENT.has(req.method ?? '');
    let controller: Dispatcher.DispatchController | null = null;
    let bodyTimer: NodeJS.Timeout | null = null;
    let aborted: Error | null = null;
    const abort = (err: Error) => {
      if (aborted !== null) return;
      aborted = err;
      if (controller !== null) controller.abort(err);
    };

    // The body goes upstream through a counting iterator, not a 'data' listener: a
    // listener would switch the request to flowing mode and lose chunks that arrive
    // before undici starts reading. The iterator enforces the size limit on bodies
    // without a declared length and the idle timeout between chunks.
    let streamed: AsyncGenerator<Buffer> | null = null;
    /** A byte of the client's body was taken for an attempt: it cannot be sent again. */
    let bodyStarted = false;
    if (ex.body === null && hasBody) {
      if (bodyIdleTimeoutMs > 0) {
        bodyTimer = setTimeout(() => {
          // 408 with Connection: close (the body is unread), see respond.ts.
          abort(new BodyTimeoutError(`no request body bytes for ${bodyIdleTimeoutMs} ms`));
        }, bodyIdleTimeoutMs);
        bodyTimer.unref();
      }
      streamed = countedBody(ex, maxBodyBytes, () => bodyTimer, abort);
    }
    /**
     * What one attempt sends: the bytes a stage read already (policy body_fields), or the
     * client's stream behind a wrapper that notes when an attempt starts reading it. An
     * attempt that fails before reading leaves the stream whole for the next one.
     */
    function bodyFor(): AsyncIterable<Buffer> | Buffer | null {
      if (ex.body !== null) return ex.body;
      const gen = streamed;
      if (gen === null) return null;
      return {
        [Symbol.asyncIterator]: () => ({
          next: () => {
            bodyStarted = true;
            return gen.next();
          },
          return: (v?: unknown) => (bodyStarted ? gen.return(v as undefined) : Promise.resolve({ done: true as const, value: undefined })),
        }),
      };
    }
    // The client went away: stop the upstream exchange too.
    res.once('close', () => {
      if (bodyTimer !== null) clearTimeout(bodyTimer);
      if (!res.writableFinished) abort(new Error('client closed the connection'));
    });

    const tried = new Set<UpstreamMember>();
    let retries = 0;
    /**
     * Another member for a failed attempt, or null (the failure is the answer). Only when
     * repeating cannot duplicate work: nothing reached the upstream (connect_failure), or
     * the body is still whole and the method idempotent or its body not sent yet.
     */
    function retryMember(reason: FailureReason): UpstreamMember | null {
      if (!retryOn.has(reason) || aborted !== null || res.headersSent) return null;
      if (bodyStarted) return null;
      if (reason !== 'connect_failure' && !idempotent && !(hasBody && ex.body === null)) return null;
      if (retries >= maxRetries) return null;
      const next = balancer.pick(ex, tried);
      if (next === null) return null;
      if (!balancer.takeRetry(Date.now())) {
        budgetExhausted.inc();
        return null;
      }
      retries++;
      retried.inc();
      ex.note('retries', retries);
      return next;
    }

    // Sync audit: upstream chunks that arrive while the record is being written.
    let held: Buffer[] | null = null;
    let heldEnd = false;
    let auditRefused = false;
    function writeHead(c: Dispatcher.DispatchController, statusCode: number, headers: unknown): void {
      const list = buildResponseHeaders(policy, headers as Record<string, string | string[] | undefined>, ex.extraHeaders, ex.clientHttps);
      if (ctx.draining) {
        list.push('Connection', 'close');
        connectionOf(ex.socket).close();
      }
      try {
        (res as import('node:http').ServerResponse).writeHead(statusCode, list);
      } catch (err) {
        // An upstream header node refuses to write (invalid characters): don't pass it on.
        c.abort(err as Error);
        return;
      }
      if (req.method === 'HEAD' || statusCode === 204 || statusCode === 304) (res as import('node:http').ServerResponse).flushHeaders();
    }

    function attempt(member: UpstreamMember): void {
      tried.add(member);
      member.started();
      // The log line names the member that answered (the last attempt's).
      ex.note('upstream', member.id);
      /** The member's outcome is recorded once per attempt. */
      let settled = false;
      let replaced = false;
      const settle = (outcome: FailureReason | 'ok' | 'abandoned') => {
        if (settled) return;
        settled = true;
        if (outcome === 'ok') member.succeeded();
        else if (outcome === 'abandoned') member.abandoned();
        else member.failed(outcome);
      };
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (aborted !== null) c.abort(aborted);
        },
        onResponseStart(c, statusCode, headers) {
          const failed = RETRY_STATUSES[statusCode];
          if (failed !== undefined) {
            settle(failed);
            const next = retryMember(failed);
            if (next !== null) {
              // The answer is dropped unread; the next member gets the request.
              replaced = true;
              c.abort(new RetryAbort(`upstream answered ${statusCode}`));
              attempt(next);
              return;
            }
          } else settle('ok');
          ex.upstreamMs = performance.now() - t0;
          ex.status = statusCode;
          if (ex.hook !== null) ex.hook.responseStart(statusCode, headers as Record<string, string | string[] | undefined>);
          if (ctx.beforeRespond !== null) {
            // Sync audit: hold the upstream's answer until its record is durable.
            held = [];
            c.pause();
            ctx.beforeRespond(ex).then(
              () => {
                const chunks = held as Buffer[];
                held = null;
                if (res.destroyed) return;
                writeHead(c, statusCode, headers);
                for (const chunk of chunks) res.write(chunk);
                if (heldEnd) res.end();
                else c.resume();
              },
              () => {
                held = null;
                auditRefused = true;
                refuse(ctx, ex, policy, new Refusal('audit_unavailable', 'audit'));
                c.abort(new Error('audit record not durable'));
              },
            );
            return;
          }
          writeHead(c, statusCode, headers);
        },
        onResponseData(c, data) {
          if (replaced) return;
          // A hook (the LLM route) may take bytes out of the answer (docs/llm.md#usage).
          const chunk = ex.hook === null ? data : ex.hook.responseData(data);
          if (chunk === null) return;
          ex.bytesOut += chunk.length;
          if (held !== null) {
            held.push(chunk);
            return;
          }
          if (!res.write(chunk)) {
            c.pause();
            res.once('drain', () => c.resume());
          }
        },
        onResponseEnd() {
          if (replaced) return;
          if (ex.hook !== null) ex.hook.responseEnd();
          if (held !== null) heldEnd = true;
          else res.end();
        },
        onResponseError(_c, err) {
          if (replaced) return;
          held = null;
          if (auditRefused) return;
          if (res.headersSent) {
            // Mid-body failure: the status is gone; a truncated response is the honest answer.
            if (bodyTimer !== null) clearTimeout(bodyTimer);
            upstreamErrors.upstream_error.inc();
            res.destroy();
            return;
          }
          if (res.destroyed) {
            settle('abandoned');
            return;
          }
          if (aborted !== null) {
            // The client left, or its body broke a limit: nothing to hold against the member.
            settle('abandoned');
            if (bodyTimer !== null) clearTimeout(bodyTimer);
            fail(ex, aborted);
            return;
          }
          const reason = failureReason(err);
          settle(reason);
          const next = retryMember(reason);
          if (next !== null) {
            attempt(next);
            return;
          }
          if (bodyTimer !== null) clearTimeout(bodyTimer);
          fail(ex, err);
        },
      };
      try {
        member.dispatcher.dispatch(
          {
            path: member.basePath + target,
            method: req.method as Dispatcher.HttpMethod,
            headers: ex.hook === null ? upstreamRequestHeaders(ex, headerOpts) : ex.hook.requestHeaders(upstreamRequestHeaders(ex, headerOpts)),
            // undici streams any async iterable; its DispatchOptions type only lists Readable.
            body: bodyFor() as unknown as import('node:stream').Readable | null,
          },
          handler,
        );
      } catch (err) {
        settle('error');
        fail(ex, err);
      }
    }

    const expect = req.headers.expect;
    if (expect !== undefined) {
      // Admitted: now the client may send its body. Any other expectation cannot be met.
      if (expect.toLowerCase() !== '100-continue') return refuse(ctx, ex, policy, EXPECTATION_FAILED);
      if (hasBody && ex.body === null) res.writeContinue();
    }
    attempt(first);
  }

  function upgrade(ex: Exchange, head: Buffer): void {
    if (opts.zoneViolation === true) return refuse(ctx, ex, policy, ZONE_VIOLATION);
    const target = forwardTarget(ex);
    if (target === null) return refuse(ctx, ex, policy, STRIP_MISMATCH);
    balancer.countRequest(Date.now());
    // A tunnel is not retried: one member, chosen like any request.
    const member = balancer.pick(ex, null);
    if (member === null) return refuse(ctx, ex, policy, NO_HEALTHY);
    member.started();
    ex.note('upstream', member.id);
    const client = ex.socket;
    const t0 = performance.now();
    let done = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        if (client.destroyed) c.abort(new Error('client closed the connection'));
      },
      onRequestUpgrade(_c, statusCode, headers, upstream: Duplex) {
        done = true;
        member.succeeded();
        ex.upstreamMs = performance.now() - t0;
        ex.status = statusCode;
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        // 101 keeps its Connection/Upgrade headers: they are the point of the answer.
        const list: string[] = [];
        for (const [name, value] of Object.entries(headers)) {
          if (value === undefined || policy.drop.has(name)) continue;
          if (Array.isArray(value)) for (const v of value) list.push(name, v);
          else list.push(name, value);
        }
        for (const h of securityHeaders(policy, ex.clientHttps)) list.push(h);
        for (const h of ex.extraHeaders) list.push(h);
        let s = 'HTTP/1.1 101 Switching Protocols\r\n';
        for (let i = 0; i < list.length; i += 2) s += `${list[i]}: ${list[i + 1]}\r\n`;
        // Latin1, as Node writes every other response head: upstream header bytes pass unchanged.
        client.write(s + '\r\n', 'latin1');
        if (head.length > 0) upstream.write(head);
        upstream.on('data', (d: Buffer) => {
          ex.bytesOut += d.length;
        });
        client.on('data', (d: Buffer) => {
          ex.bytesIn += d.length;
        });
        upstream.pipe(client);
        client.pipe(upstream);
        const teardown = () => {
          upstream.destroy();
          client.destroy();
        };
        upstream.once('error', teardown);
        client.once('error', teardown);
        upstream.once('close', teardown);
        client.once('close', teardown);
      },
      onResponseStart(c, statusCode, headers) {
        // The upstream declined the upgrade: pass its status on, with our headers, and close.
        done = true;
        const failed = RETRY_STATUSES[statusCode];
        if (failed !== undefined) member.failed(failed);
        else member.succeeded();
        ex.status = statusCode;
        const list = buildResponseHeaders(policy, headers as Record<string, string | string[] | undefined>, ex.extraHeaders, ex.clientHttps);
        // The upstream's body is not relayed; rawResponse writes its own Content-Length.
        for (let i = list.length - 2; i >= 0; i -= 2) if ((list[i] as string).toLowerCase() === 'content-length') list.splice(i, 2);
        client.end(rawResponse(statusCode, list, ''));
        c.abort(new Error('upgrade declined'));
      },
      onResponseData() {},
      onResponseEnd() {},
      onResponseError(_c, err) {
        if (done) return;
        done = true;
        if (client.destroyed) member.abandoned();
        else member.failed(failureReason(err));
        fail(ex, err);
      },
    };
    try {
      member.dispatcher.dispatch(
        {
          path: member.basePath + target,
          method: 'GET',
          headers: upstreamRequestHeaders(ex, headerOpts),
          upgrade: String(ex.req.headers.upgrade ?? 'websocket'),
        },
        handler,
      );
    } catch (err) {
      member.failed('error');
      fail(ex, err);
    }
  }

  return { handle, upgrade };
}
