/**
 * The identity registry behind one interface: agents and humans with their domain,
 * status and own rate limit. Embedded (SQLite in state.dir) and PostgreSQL
 * implementations; one contract suite (`contract.test.ts`) runs against both.
 *
 * The request path never queries the store: an in-memory view (`view.ts`) is refreshed
 * when the store's change counter moves, so a check is a Map lookup.
 */
export type IdentityType = 'agent' | 'human';
export type IdentityStatus = 'active' | 'suspended';

export interface IdentityRecord {
  /** The token subject (`sub`, or the configured subject claim). */
  readonly subject: string;
  readonly type: IdentityType;
  readonly domain: string | null;
  readonly role: string | null;
  readonly status: IdentityStatus;
  /** Own requests-per-minute limit; null = the default for its type (and role). */
  readonly rpm_limit: number | null;
  readonly created_at: number;
  readonly updated_at: number;
}

export interface IdentityPatch {
  readonly status?: IdentityStatus;
  readonly rpm_limit?: number | null;
  readonly domain?: string | null;
  readonly role?: string | null;
}

export class IdentityExistsError extends Error {
  readonly code = 'identity_exists';
}

export interface IdentityStore {
  readonly kind: 'sqlite' | 'postgres';
  init(): Promise<void>;
  list(): Promise<IdentityRecord[]>;
  get(subject: string): Promise<IdentityRecord | null>;
  /** Rejects with IdentityExistsError when the subject is taken. */
  add(rec: Omit<IdentityRecord, 'created_at' | 'updated_at'>, nowMs: number): Promise<IdentityRecord>;
  /** null when there is no such subject. */
  update(subject: string, patch: IdentityPatch, nowMs: number): Promise<IdentityRecord | null>;
  remove(subject: string): Promise<boolean>;
  /**
   * Stores the identity's upstream LLM credential — already encrypted by the caller
   * (src/identity/credential-crypto.ts), never plaintext — or removes it (null). Moves the
   * version. false when there is no such identity. Removing an identity removes it too.
   */
  setCredential(subject: string, stored: string | null, nowMs: number): Promise<boolean>;
  /** Every stored (encrypted) credential, by subject. */
  credentials(): Promise<Map<string, string>>;
  /** A counter that changes on every write (cheap to poll). */
  version(): Promise<number>;
  close(): Promise<void>;
}

export const SUBJECT = /^[\x21-\x7e]{1,256}$/;
