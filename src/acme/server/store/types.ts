/**
 * ACME server state behind one interface (docs/acme.md#state): accounts, orders,
 * authorizations (with their challenges) and issued certificates, plus the nonce store.
 * Embedded: SQLite in state.dir (`sqlite.ts`). Distributed: PostgreSQL for the objects
 * (`postgres.ts`) and Redis for nonces (`redis-nonces.ts`). One contract suite
 * (`contract.test.ts`) runs against every implementation.
 *
 * State changes that race between instances (finalize, challenge validation, revocation,
 * key rollover) are compare-and-set on the status or key, so two instances serving one
 * client never both win.
 */

export type AccountStatus = 'valid' | 'deactivated' | 'revoked';
export type OrderStatus = 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
export type AuthzStatus = 'pending' | 'valid' | 'invalid' | 'deactivated' | 'expired' | 'revoked';
export type ChallengeStatus = 'pending' | 'processing' | 'valid' | 'invalid';
export type ChallengeType = 'http-01' | 'tls-alpn-01';

export interface Identifier {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

export interface AccountRecord {
  readonly id: string;
  readonly status: AccountStatus;
  /** The account key as a public JWK. */
  readonly jwk: Record<string, unknown>;
  /** RFC 7638 SHA-256 thumbprint of `jwk` (unique: one account per key). */
  readonly thumbprint: string;
  readonly contact: readonly string[];
  /** The EAB key id the account was bound with, if any. */
  readonly eab_kid: string | null;
  readonly created_at: number;
}

export interface ProblemRecord {
  readonly type: string;
  readonly detail: string;
}

export interface ChallengeRecord {
  readonly type: ChallengeType;
  readonly token: string;
  readonly status: ChallengeStatus;
  readonly validated: number | null;
  readonly error: ProblemRecord | null;
}

export interface AuthzRecord {
  readonly id: string;
  readonly account_id: string;
  readonly identifier: Identifier;
  readonly status: AuthzStatus;
  readonly expires: number;
  readonly challenges: readonly ChallengeRecord[];
}

export interface OrderRecord {
  readonly id: string;
  readonly account_id: string;
  readonly status: OrderStatus;
  readonly expires: number;
  readonly identifiers: readonly Identifier[];
  readonly authz_ids: readonly string[];
  /** Requested notAfter (epoch ms), null: the configured lifetime. */
  readonly not_after: number | null;
  /** Serial (uppercase hex) of the issued certificate. */
  readonly cert_serial: string | null;
  readonly error: ProblemRecord | null;
  readonly created_at: number;
}

export interface CertificateRecord {
  /** Uppercase hex, as node:crypto reports it. */
  readonly serial: string;
  readonly account_id: string;
  readonly order_id: string;
  /** Leaf + intermediate, PEM. */
  readonly chain_pem: string;
  /** SHA-256 (base64url) of the leaf's SubjectPublicKeyInfo: revocation by certificate key matches on it. */
  readonly spki_sha256: string;
  readonly not_after: number;
  readonly revoked_at: number | null;
  readonly revocation_reason: number | null;
}

export type KeyChangeResult = 'ok' | 'key_in_use' | 'changed';

export interface AcmeStore {
  readonly kind: 'sqlite' | 'postgres';
  init(): Promise<void>;
  /** Creates the account unless one with this thumbprint exists; returns the stored one either way. */
  createAccount(a: AccountRecord): Promise<{ account: AccountRecord; created: boolean }>;
  account(id: string): Promise<AccountRecord | null>;
  accountByThumbprint(thumbprint: string): Promise<AccountRecord | null>;
  /** Contact and status; null when there is no such account. */
  updateAccount(id: string, patch: { contact?: readonly string[]; status?: AccountStatus }): Promise<AccountRecord | null>;
  /** Key rollover: only if the account still has `oldThumbprint`, and no account holds the new key. */
  changeKey(id: string, oldThumbprint: string, jwk: Record<string, unknown>, thumbprint: string): Promise<KeyChangeResult>;

  /** Stores an order with its new authorizations (existing ones it reuses are only referenced). */
  createOrder(order: OrderRecord, newAuthzs: readonly AuthzRecord[]): Promise<void>;
  order(id: string): Promise<OrderRecord | null>;
  /** Orders of an account, newest first. */
  ordersOf(accountId: string, limit: number): Promise<OrderRecord[]>;
  /** Replaces the order if its status is still `expect`; false otherwise. */
  updateOrder(next: OrderRecord, expect: OrderStatus): Promise<boolean>;
  /** Orders of the account still pending, ready or processing and not expired at `now`. */
  countOpenOrders(accountId: string, now: number): Promise<number>;

  authz(id: string): Promise<AuthzRecord | null>;
  /** Replaces the authorization if its status is still `expect`; false otherwise. */
  updateAuthz(next: AuthzRecord, expect: AuthzStatus): Promise<boolean>;
  /** A valid, unexpired authorization of this account for this identifier (newest), for reuse. */
  validAuthzFor(accountId: string, identifier: Identifier, now: number): Promise<AuthzRecord | null>;
  countPendingAuthzs(accountId: string, now: number): Promise<number>;

  putCertificate(c: CertificateRecord): Promise<void>;
  certificate(serial: string): Promise<CertificateRecord | null>;
  /** Marks it revoked unless it already is; false when it was (or does not exist). */
  revokeCertificate(serial: string, at: number, reason: number): Promise<boolean>;
  /** Revoked certificates not yet expired at `now` (what the CRL lists). */
  revokedCertificates(now: number): Promise<Array<Pick<CertificateRecord, 'serial' | 'revoked_at' | 'revocation_reason'>>>;
  close(): Promise<void>;
}

/** Anti-replay nonces (RFC 8555 §6.5): each accepted at most once, across every instance. */
export interface NonceStore {
  readonly kind: 'sqlite' | 'redis';
  /** Remembers a new nonce until `expiresAt` (epoch ms). */
  add(nonce: string, expiresAt: number): Promise<void>;
  /** True exactly once for a nonce that was added and has not expired at `now`. */
  consume(nonce: string, now: number): Promise<boolean>;
  close(): Promise<void>;
}
