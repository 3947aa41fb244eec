/**
 * The host a request is routed by: the authority (Host header or absolute-form target)
 * without its port, lowercase, without a trailing dot. null when it is not an RFC 3986
 * reg-name / IPv4 or a bracketed IPv6 literal — such a request is answered 400, never
 * routed. One function for the proxy's routing and the HTTPS redirect listener.
 */
const HOST_SYNTAX = /^(?:[a-z0-9._~!$&'()*+,;=%-]+|\[[0-9a-f:.]+\])$/;

export function routingHost(authority: string): string | null {
  let host = authority;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    if (end < 0) return null;
    host = host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  host = host.toLowerCase();
  // A bare IPv6 literal has colons and fails the syntax check: Host carries it bracketed.
  if (host.charCodeAt(host.length - 1) === 46 /* . */) host = host.slice(0, -1);
  return HOST_SYNTAX.test(host) ? host : null;
}
