/**
 * canonical() (canonical.ts) written straight into a byte buffer as UTF-8, for the
 * writer's per-record path on the gateway's thread: the same bytes as
 * Buffer.from(canonical(r), 'utf8'), without building the string.
 *
 * Why: canonical() concatenates ~70 pieces per record; each concatenation allocates an
 * intermediate string (~2.5 KB of garbage per record) and the result is a rope that must
 * be flattened before it can be written anywhere. On the gateway's thread that garbage
 * makes the young-generation collections frequent, and each one copies every record body
 * still waiting for its batch. Writing bytes allocates nothing.
 *
 * Anything but the common case — a string with a character JSON escapes or a non-ASCII
 * one, the optional `llm` member, a value of an unexpected type — goes through canonical()
 * itself (per string, or for the whole record), so canonical() stays the one definition;
 * canonical-bytes.test.ts checks the two against each other.
 */
import { canonical } from './canonical.js';
import type { AuditBody, ChainFields } from './record.js';

type Canon = AuditBody & ChainFields;

/** The members' keys as they precede their values, in canonical order (`{"agent":`, `,"bytes_in":`, ...). */
const K = (name: string, first = false) => Buffer.from(`${first ? '{' : ','}"${name}":`, 'latin1');
const K_AGENT = K('agent', true);
const K_BYTES_IN = K('bytes_in');
const K_BYTES_OUT = K('bytes_out');
const K_CLIENT_IP = K('client_ip');
const K_CODE = K('code');
const K_COUNT = K('count');
const K_DECISION = K('decision');
const K_DOMAIN = K('domain');
const K_FIRST_TIME = K('first_time');
const K_IDENTITY_TYPE = K('identity_type');
const K_INSTANCE = K('instance');
const K_KID = K('kid');
const K_KIND = K('kind');
const K_LATENCY_US = K('latency_us');
const K_LOST_TO = K('lost_to');
const K_METHOD = K('method');
const K_PATH = K('path');
const K_PEER_IP = K('peer_ip');
const K_POLICIES = K('policies');
const K_REQUEST_ID = K('request_id');
const K_ROLE = K('role');
const K_ROUTE = K('route');
const K_RULE = K('rule');
const K_SEQ = K('seq');
const K_SITE = K('site');
const K_STAGE = K('stage');
const K_STATUS = K('status');
const K_STREAM = K('stream');
const K_SUBJECT = K('subject');
const K_TIME = K('time');
const K_TOKEN_ID_HASH = K('token_id_hash');
const K_V = K('v');

const DIGITS = new Uint8Array(20);

/** Thrown inside the fast path: the record is written by canonical() instead. */
const SLOW = Symbol('slow');

/**
 * Appends records' canonical forms to a buffer. `buf` may be replaced by a larger one
 * (through `grow`, which must return a buffer holding the bytes written so far).
 */
export class CanonicalWriter {
  buf: Buffer;
  /** Bytes written. */
  pos = 0;
  /** UTF-16 length of the last record written (its canonical string's length). */
  units = 0;
  private readonly grow: (need: number) => Buffer;

  constructor(buf: Buffer, grow: (need: number) => Buffer) {
    this.buf = buf;
    this.grow = grow;
  }

  /** Appends the canonical form of `r`; returns its length in bytes. Throws what canonical() throws. */
  write(r: Canon): number {
    const start = this.pos;
    if (r.llm === undefined) {
      try {
        this.fields(r);
        return this.pos - start;
      } catch (err) {
        if (err !== SLOW) throw err;
        this.pos = start;
      }
    }
    const c = canonical(r);
    this.room(c.length * 3);
    const n = this.buf.write(c, this.pos, 'utf8');
    this.pos += n;
    this.units = c.length;
    return n;
  }

  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = this.grow(this.pos + n);
  }

  private key(k: Buffer): void {
    // Keys are short: a loop beats a native copy call.
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < k.length; i++) b[p++] = k[i] as number;
    this.pos = p;
    this.units += k.length;
  }

  private nul(): void {
    const b = this.buf;
    const p = this.pos;
    b[p] = 0x6e;
    b[p + 1] = 0x75;
    b[p + 2] = 0x6c;
    b[p + 3] = 0x6c;
    this.pos = p + 4;
    this.units += 4;
  }

  private s(k: Buffer, v: unknown): void {
    if (v === null) {
      this.room(k.length + 4);
      this.key(k);
      this.nul();
      return;
    }
    if (typeof v !== 'string') throw SLOW;
    const n = v.length;
    this.room(k.length + n + 2);
    this.key(k);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      // What JSON escapes (", \, controls) and anything beyond ASCII: canonical()'s way.
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) throw SLOW;
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.pos = p;
    this.units += n + 2;
  }

  private n(k: Buffer, v: unknown): void {
    if (v === null) {
      this.room(k.length + 4);
      this.key(k);
      this.nul();
      return;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw SLOW;
    this.room(k.length + 17);
    this.key(k);
    const b = this.buf;
    let p = this.pos;
    let x = v;
    if (x < 0) {
      b[p++] = 0x2d;
      x = -x;
    }
    // Digits least significant first into the scratch, then in order (String(x); exact
    // arithmetic below 2^53).
    const d = DIGITS;
    let k2 = 0;
    do {
      const digit = x % 10;
      d[k2++] = 0x30 + digit;
      x = (x - digit) / 10;
    } while (x > 0);
    while (k2 > 0) b[p++] = d[--k2] as number;
    this.units += p - this.pos;
    this.pos = p;
  }

  private list(k: Buffer, v: unknown): void {
    if (v === null) {
      this.room(k.length + 4);
      this.key(k);
      this.nul();
      return;
    }
    // Policy ids are rare and short: a record that has them is written by canonical().
    throw SLOW;
  }

  private fields(r: Canon): void {
    this.units = 0;
    this.s(K_AGENT, r.agent);
    this.n(K_BYTES_IN, r.bytes_in);
    this.n(K_BYTES_OUT, r.bytes_out);
    this.s(K_CLIENT_IP, r.client_ip);
    this.s(K_CODE, r.code);
    this.n(K_COUNT, r.count);
    this.s(K_DECISION, r.decision);
    this.s(K_DOMAIN, r.domain);
    this.s(K_FIRST_TIME, r.first_time);
    this.s(K_IDENTITY_TYPE, r.identity_type);
    this.s(K_INSTANCE, r.instance);
    this.s(K_KID, r.kid);
    this.s(K_KIND, r.kind);
    this.n(K_LATENCY_US, r.latency_us);
    this.n(K_LOST_TO, r.lost_to);
    this.s(K_METHOD, r.method);
    this.s(K_PATH, r.path);
    this.s(K_PEER_IP, r.peer_ip);
    this.list(K_POLICIES, r.policies);
    this.s(K_REQUEST_ID, r.request_id);
    this.s(K_ROLE, r.role);
    this.s(K_ROUTE, r.route);
    this.s(K_RULE, r.rule);
    this.n(K_SEQ, r.seq);
    this.s(K_SITE, r.site);
    this.s(K_STAGE, r.stage);
    this.n(K_STATUS, r.status);
    this.s(K_STREAM, r.stream);
    this.s(K_SUBJECT, r.subject);
    this.s(K_TIME, r.time);
    this.s(K_TOKEN_ID_HASH, r.token_id_hash);
    this.n(K_V, r.v);
    this.room(1);
    this.buf[this.pos++] = 0x7d;
    this.units += 1;
  }
}
