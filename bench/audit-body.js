// The record body the audit benchmarks (audit.js, audit-floor.js) produce: an allowed,
// proxied GET with every field a busy gateway's exchange record would have.
import crypto from 'node:crypto';

/** `emptyBody` from dist/audit/record.js; `time` the record's ISO time; `i` numbers the path. */
export function benchBody(emptyBody, time, i) {
  const b = emptyBody('exchange', time);
  b.request_id = crypto.randomUUID();
  b.instance = 'bench';
  b.site = 'app';
  b.route = '/';
  b.client_ip = '203.0.113.7';
  b.peer_ip = '127.0.0.1';
  b.method = 'GET';
  b.path = `/api/v1/items/${i}`;
  b.status = 200;
  b.decision = 'allowed';
  b.stage = 'proxy';
  b.latency_us = 850;
  b.bytes_in = 0;
  b.bytes_out = 1024;
  return b;
}
