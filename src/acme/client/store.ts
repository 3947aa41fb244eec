/**
 * Where the ACME client keeps its account key and the certificates it obtained (with
 * their keys), per ACME directory. Two implementations behind one interface, one contract
 * suite (store.contract.test.ts): files under state.dir (file-store.ts) and PostgreSQL
 * (postgres-store.ts), where several instances share one certificate per site and an
 * advisory lock lets one of them order it.
 */
import { createHash } from 'node:crypto';

export interface StoredCertificate {
  /** Leaf first, then the intermediates, as the CA sent them. */
  readonly chainPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
}

export interface AcmeStore {
  /** Creates tables / directories; idempotent. */
  init(): Promise<void>;
  loadAccountKey(): Promise<string | null>;
  /** Keeps the first account key saved: returns the key in force (another instance may have won). */
  saveAccountKey(keyPem: string): Promise<string>;
  load(name: string): Promise<StoredCertificate | null>;
  save(name: string, cert: StoredCertificate): Promise<void>;
  /**
   * Runs `fn` holding the order lock for `name` (one order per certificate across every
   * process sharing the store); `'busy'` without running it when someone else holds it.
   */
  withOrderLock<T>(name: string, fn: () => Promise<T>): Promise<T | 'busy'>;
  /**
   * http-01 tokens of a pending order, for the other instances: the CA's request may reach
   * any of them. The file store is one instance: it keeps none (`shared` false).
   */
  readonly shared: boolean;
  publishChallenge(token: string, keyAuthorization: string): Promise<void>;
  withdrawChallenge(token: string): Promise<void>;
  lookupChallenge(token: string): Promise<string | null>;
  close(): Promise<void>;
}

/** Certificates from different CAs never mix: everything is keyed by the directory URL. */
export function directoryNamespace(directory: string): string {
  return createHash('sha256').update(directory).digest('hex').slice(0, 16);
}
