/**
 * Admin API routes for identity (all behind the admin bearer token, src/admin/server.ts):
 *
 *   POST   /v1/revocations          {jti | jti_sha256 [, exp]} or {subject [, before]} → 201
 *   GET    /v1/revocations          live entries this instance holds, and whether it is current
 *   GET    /v1/identities           the registry
 *   POST   /v1/identities           {subject, type, domain?, role?, rpm_limit?, status?} → 201
 *   GET    /v1/identities/:subject
 *   PATCH  /v1/identities/:subject  {status?, rpm_limit?, domain?, role?}
 *   DELETE /v1/identities/:subject  → 204
 *   PUT    /v1/identities/:subject/llm-credential  {credential} → 204: stored encrypted
 *                                   (identities.credential_keys); DELETE removes it
 *   POST   /v1/tokens               {sub, type, role?, domain?, agent?, ttl?, aud?} — only
 *                                   registered when admin.issuer is configured
 */
import { resolve } from 'node:path';
import { AdminError, type AdminRequest, type AdminRoute } from '../admin/server.js';
import type { Config } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { loadCredentialKeyring } from './credential-crypto.js';
import { IdentityExistsError, SUBJECT, type IdentityPatch } from '../stores/identities/types.js';
import { issueToken, IssueInputError, loadPrivateKey, type IssueAlg } from './issue.js';
import { jtiRevocation, RevocationInputError, subjectRevocation } from './revoke.js';
import type { IdentityServices } from './services.js';

const SUBJECT_PATH = /^\/v1\/identities\/(?<subject>[^/]+)$/;
const CREDENTIAL_PATH = /^\/v1\/identities\/(?<subject>[^/]+)\/llm-credential$/;
/** Longest upstream credential accepted (API keys are well under 1 KiB). */
const MAX_CREDENTIAL = 4096;

function obj(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new AdminError('bad_request', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

function optString(o: Record<string, unknown>, k: string): string | null | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v !== 'string' || v.length > 256) throw new AdminError('bad_request');
  return v;
}

function optLimit(o: Record<string, unknown>): number | null | undefined {
  const v = o.rpm_limit;
  if (v === undefined || v === null) return v;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 1_000_000_000) throw new AdminError('bad_request');
  return v as number;
}

function subjectParam(r: AdminRequest): string {
  let s: string;
  try {
    s = decodeURIComponent(r.params.subject ?? '');
  } catch {
    throw new AdminError('bad_request');
  }
  if (!SUBJECT.test(s)) throw new AdminError('bad_request');
  return s;
}

export function identityAdminRoutes(svc: IdentityServices, config: () => Config, dir: () => string, nowFn?: () => number): AdminRoute[] {
  const now = nowFn ?? Date.now;
  const store = svc.stores.identities;
  const registryFailed = (err: unknown): never => {
    if (err instanceof AdminError) throw err;
    throw new AdminError('identity_registry_unavailable');
  };
  const changed = async () => {
    svc.view.nudge();
    await svc.stores.announce();
  };
  const routes: AdminRoute[] = [
    {
      method: 'POST',
      path: '/v1/revocations',
      auth: true,
      async handle(r) {
        const b = obj(await r.json());
        const t = now();
        let entry;
        try {
          if (b.subject !== undefined) {
            if (b.jti !== undefined || b.jti_sha256 !== undefined) throw new RevocationInputError('give a jti or a subject, not both');
            const before = b.before === undefined ? undefined : typeof b.before === 'number' ? b.before * 1000 : Date.parse(String(b.before));
            entry = subjectRevocation(config(), b.subject as string, before, t);
          } else {
            entry = jtiRevocation(config(), { jti: b.jti as string | undefined, jtiSha256: b.jti_sha256 as string | undefined, exp: b.exp as number | undefined }, t);
          }
        } catch (err) {
          if (err instanceof RevocationInputError) throw new AdminError('bad_request', err.message);
          throw err;
        }
        try {
          await svc.stores.revocations.add(entry);
        } catch {
          throw new AdminError('revocation_unavailable');
        }
        r.send(201, { revocation: entry });
      },
    },
    {
      method: 'GET',
      path: '/v1/revocations',
      auth: true,
      handle(r) {
        const t = now();
        r.send(200, { current: svc.stores.revocations.current(t), revocations: svc.stores.revocations.list(t) });
      },
    },
    {
      method: 'GET',
      path: '/v1/identities',
      auth: true,
      async handle(r) {
        const list = await store.list().catch(registryFailed);
        r.send(200, { identities: list });
      },
    },
    {
      method: 'POST',
      path: '/v1/identities',
      auth: true,
      async handle(r) {
        const b = obj(await r.json());
        const subject = b.subject;
        if (typeof subject !== 'string' || !SUBJECT.test(subject)) throw new AdminError('bad_request', 'subject must be 1-256 printable characters');
        if (b.type !== 'agent' && b.type !== 'human') throw new AdminError('bad_request', 'type must be agent or human');
        const status = b.status ?? 'active';
        if (status !== 'active' && status !== 'suspended') throw new AdminError('bad_request');
        let rec;
        try {
          rec = await store.add({ subject, type: b.type, domain: optString(b, 'domain') ?? null, role: optString(b, 'role') ?? null, status, rpm_limit: optLimit(b) ?? null }, now());
        } catch (err) {
          if (err instanceof IdentityExistsError) throw new AdminError('identity_exists');
          return registryFailed(err);
        }
        await changed();
        r.send(201, { identity: rec });
      },
    },
    {
      method: 'GET',
      path: SUBJECT_PATH,
      auth: true,
      async handle(r) {
        const rec = await store.get(subjectParam(r)).catch(registryFailed);
        if (rec === null) throw new AdminError('not_found');
        r.send(200, { identity: rec });
      },
    },
    {
      method: 'PATCH',
      path: SUBJECT_PATH,
      auth: true,
      async handle(r) {
        const subject = subjectParam(r);
        const b = obj(await r.json());
        const patch: { -readonly [K in keyof IdentityPatch]: IdentityPatch[K] } = {};
        if (b.status !== undefined) {
          if (b.status !== 'active' && b.status !== 'suspended') throw new AdminError('bad_request');
          patch.status = b.status;
        }
        const limit = optLimit(b);
        if (limit !== undefined) patch.rpm_limit = limit;
        const domain = optString(b, 'domain');
        if (domain !== undefined) patch.domain = domain;
        const role = optString(b, 'role');
        if (role !== undefined) patch.role = role;
        const rec = await store.update(subject, patch, now()).catch(registryFailed);
        if (rec === null) throw new AdminError('not_found');
        await changed();
        r.send(200, { identity: rec });
      },
    },
    {
      method: 'DELETE',
      path: SUBJECT_PATH,
      auth: true,
      async handle(r) {
        const ok = await store.remove(subjectParam(r)).catch(registryFailed);
        if (!ok) throw new AdminError('not_found');
        await changed();
        r.res.writeHead(204, { 'Cache-Control': 'no-store' });
        r.res.end();
      },
    },
  ];
  const credentialWrite = async (r: AdminRequest, value: string | null) => {
    const subject = subjectParam(r);
    let stored: string | null = null;
    if (value !== null) {
      const keys = config().identities.credential_keys;
      if (keys.length === 0) throw new AdminError('bad_request', 'identities.credential_keys is not configured');
      stored = loadCredentialKeyring(keys, dir()).encrypt(subject, value);
    }
    const ok = await store.setCredential(subject, stored, now()).catch(registryFailed);
    if (!ok) throw new AdminError('not_found');
    await changed();
    // The credential is never echoed, not even encrypted.
    r.res.writeHead(204, { 'Cache-Control': 'no-store' });
    r.res.end();
  };
  routes.push(
    {
      method: 'PUT',
      path: CREDENTIAL_PATH,
      auth: true,
      async handle(r) {
        const b = obj(await r.json());
        const c = b.credential;
        if (typeof c !== 'string' || c.length === 0 || c.length > MAX_CREDENTIAL || !/^[\x21-\x7e]+$/.test(c)) throw new AdminError('bad_request', 'credential must be 1-4096 printable ASCII characters');
        await credentialWrite(r, c);
      },
    },
    {
      method: 'DELETE',
      path: CREDENTIAL_PATH,
      auth: true,
      handle: (r) => credentialWrite(r, null),
    },
  );
  const issuer = config().admin.issuer;
  if (issuer) {
    // Read once at start: only this endpoint ever holds the private key, and only when configured.
    const key = loadPrivateKey(readSecretFile(resolve(dir(), issuer.key_file)));
    routes.push({
      method: 'POST',
      path: '/v1/tokens',
      auth: true,
      async handle(r) {
        const b = obj(await r.json());
        try {
          const out = await issueToken(
            key,
            {
              sub: b.sub as string,
              type: b.type as 'agent' | 'human',
              role: optString(b, 'role') ?? undefined,
              domain: optString(b, 'domain') ?? undefined,
              agent: optString(b, 'agent') ?? undefined,
              ttl: b.ttl as number | undefined,
              aud: optString(b, 'aud') ?? undefined,
              iss: issuer.iss,
              kid: issuer.kid,
              alg: issuer.alg as IssueAlg | undefined,
            },
            { nowMs: now(), maxTtlS: Math.floor(config().revocation.max_token_lifetime / 1000), claims: config().auth.claims },
          );
          r.send(201, out);
        } catch (err) {
          if (err instanceof IssueInputError) throw new AdminError('bad_request', err.message);
          throw err;
        }
      },
    });
  }
  return routes;
}
