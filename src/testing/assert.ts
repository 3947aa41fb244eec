/** Assertions and waits shared by the integration tests. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { SECURITY_HEADERS } from './harness.js';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The gateway's own error shape: status, security headers, no-store, JSON body whose request id matches the header. */
export function assertErrorAnswer(status: number, headers: Record<string, string | string[] | undefined>, body: string, expectStatus: number, code: string): void {
  assert.equal(status, expectStatus, `status (body: ${body})`);
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(headers[k], v, `security header ${k}`);
  assert.equal(headers['cache-control'], 'no-store');
  assert.equal(headers['content-type'], 'application/json');
  const rid = headers['x-request-id'];
  assert.match(String(rid), UUID, 'X-Request-Id');
  const parsed = JSON.parse(body) as { error: { code: string; message: string; request_id: string } };
  assert.equal(parsed.error.code, code);
  assert.equal(typeof parsed.error.message, 'string');
  assert.ok(parsed.error.message.length > 0);
  assert.equal(parsed.error.request_id, rid);
}

/** Polls `cond` until it holds (true) or `timeoutMs` passes (false). */
export async function until(cond: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}

/** 'connected', 'timeout', or the connect error code (e.g. ECONNREFUSED). */
export function tryConnect(port: number, host = '127.0.0.1', timeoutMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    const t = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}
