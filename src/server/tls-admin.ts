/**
 * Admin API for TLS: which certificates are presented, with serial, expiry and the next
 * renewal. Never any key material. Behind the admin bearer token like every API route.
 */
import type { AdminRoute } from '../admin/server.js';
import type { TlsManager } from './tls.js';

export function tlsAdminRoutes(tls: TlsManager): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/v1/tls/certificates',
      auth: true,
      handle: (r) => r.send(200, { certificates: tls.certificates() }),
    },
  ];
}
