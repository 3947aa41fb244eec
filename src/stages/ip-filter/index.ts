/**
 * IP filter: per-site (and optional global) allow and deny lists of CIDRs, compiled to
 * bit masks at start-up. A denied client gets its connection closed with zero bytes
 * written (no status, no error page). It runs before every other stage, so a blocked
 * client never learns anything else about the site — not even that it is rate limited.
 * Deny wins over allow, so "allow 10.0.0.0/8, deny 10.6.6.6" does what it says.
 * The client address comes from the one resolver (trusted proxies), never from a header.
 */
import type { IpFilterConfig } from '../../config/schema.js';
import { compileCidrs } from '../../net/ip.js';
import type { Exchange } from '../../pipeline/exchange.js';
import { Refusal } from '../../pipeline/refusal.js';
import type { Stage } from '../../pipeline/stage.js';

export const IP_FILTER = 'ip_filter';

export function createIpFilterStage(config: IpFilterConfig): Stage {
  const allow = config.allow === undefined ? null : compileCidrs(config.allow);
  const deny = compileCidrs(config.deny);
  // Refusals carry no per-request data, so two instances serve every denial.
  const deniedByAllow = new Refusal('ip_denied', IP_FILTER, 'allow');
  const deniedByDeny = new Refusal('ip_denied', IP_FILTER, 'deny');
  return {
    id: IP_FILTER,
    run: function ipFilter(ex: Exchange) {
      const ip = ex.clientIp;
      if (deny.size > 0 && deny.has(ip)) return deniedByDeny;
      if (allow !== null && !allow.has(ip)) return deniedByAllow;
      return undefined;
    },
  };
}
