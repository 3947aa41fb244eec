/**
 * Reads the ALPN protocols and the SNI name from a TLS ClientHello (RFC 8446 §4.1.2,
 * RFC 7301, RFC 6066 §3) without consuming it, so a connection can be routed before the
 * handshake: tls-alpn-01 validation connections (ALPN `acme-tls/1`) go to the challenge
 * responder, everything else to the listener as if nothing had looked.
 */

export interface ClientHelloInfo {
  readonly serverName: string | null;
  readonly alpn: readonly string[];
}

/** The first TLS record's largest size (header + 16 KiB payload): a ClientHello that needs more is not ours. */
export const MAX_HELLO_BYTES = 5 + 16_384;

/**
 * `'more'` while the first record is incomplete; null when the bytes are not a ClientHello
 * that fits in one record (any such connection is handed on untouched).
 */
export function parseClientHello(buf: Buffer): ClientHelloInfo | 'more' | null {
  if (buf.length < 5) return buf.length > 0 && buf[0] !== 0x16 ? null : 'more';
  if (buf[0] !== 0x16) return null; // not a handshake record
  const recordLen = buf.readUInt16BE(3);
  if (recordLen > 16_384) return null;
  if (buf.length < 5 + recordLen) return 'more';
  const rec = buf.subarray(5, 5 + recordLen);
  if (rec.length < 4 || rec[0] !== 0x01) return null; // not a ClientHello
  const helloLen = rec.readUIntBE(1, 3);
  if (helloLen + 4 > rec.length) return null; // spans records: not a validation hello
  const h = rec.subarray(4, 4 + helloLen);
  let o = 2 + 32; // legacy_version, random
  if (o + 1 > h.length) return null;
  o += 1 + (h[o] as number); // session id
  if (o + 2 > h.length) return null;
  o += 2 + h.readUInt16BE(o); // cipher suites
  if (o + 1 > h.length) return null;
  o += 1 + (h[o] as number); // compression methods
  if (o === h.length) return { serverName: null, alpn: [] };
  if (o + 2 > h.length) return null;
  const extEnd = o + 2 + h.readUInt16BE(o);
  if (extEnd > h.length) return null;
  o += 2;
  let serverName: string | null = null;
  let alpn: string[] = [];
  while (o + 4 <= extEnd) {
    const type = h.readUInt16BE(o);
    const len = h.readUInt16BE(o + 2);
    const body = h.subarray(o + 4, o + 4 + len);
    if (body.length !== len) return null;
    o += 4 + len;
    if (type === 0 && body.length >= 5 && body[2] === 0) {
      const nameLen = body.readUInt16BE(3);
      if (5 + nameLen <= body.length) serverName = body.subarray(5, 5 + nameLen).toString('latin1');
    } else if (type === 16 && body.length >= 2) {
      const listEnd = Math.min(body.length, 2 + body.readUInt16BE(0));
      alpn = [];
      for (let p = 2; p < listEnd; ) {
        const n = body[p] as number;
        alpn.push(body.subarray(p + 1, p + 1 + n).toString('latin1'));
        p += 1 + n;
      }
    }
  }
  return { serverName, alpn };
}
