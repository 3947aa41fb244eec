/** Cross-field checks of the `audit:` block (called from config/validate.ts). */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PartialConfig } from '../config/load.js';
import { checkSecretFile } from '../config/secrets.js';
import { isLoopbackHost } from '../server/address.js';

export function validateAudit(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const a = config.audit;
  if (!a.enabled) return;
  if (a.keys.length === 0) err('audit.keys', 'audit is enabled but no HMAC key is configured');
  const ids = new Set<string>();
  let active = 0;
  a.keys.forEach((k, i) => {
    if (ids.has(k.id)) err(`audit.keys[${i}].id`, `duplicate key id ${JSON.stringify(k.id)}`);
    ids.add(k.id);
    if (k.active === true) active++;
    const problem = checkSecretFile(resolve(dir, k.file));
    if (problem) err(`audit.keys[${i}].file`, problem);
    else {
      const text = readFileSync(resolve(dir, k.file), 'utf8').replace(/\r?\n$/, '');
      const bytes = /^(?:[0-9a-fA-F]{2}){32,}$/.test(text) ? text.length / 2 : Buffer.byteLength(text);
      if (bytes < 32) err(`audit.keys[${i}].file`, `the key in ${k.file} is shorter than 32 bytes`);
    }
  });
  if (active > 1) err('audit.keys', 'at most one key may be marked active');
  if (a.checkpoint_key_file !== undefined) {
    const path = resolve(dir, a.checkpoint_key_file);
    const problem = checkSecretFile(path);
    if (problem) err('audit.checkpoint_key_file', problem);
    else {
      try {
        if (createPrivateKey(readFileSync(path)).asymmetricKeyType !== 'ed25519') err('audit.checkpoint_key_file', 'not an Ed25519 private key');
      } catch {
        err('audit.checkpoint_key_file', 'not a PEM private key');
      }
    }
  }
  if (a.checkpoint_records === 0 && a.checkpoint_interval === 0 && a.checkpoint_key_file !== undefined) {
    err('audit.checkpoint_records', 'checkpoint_records and checkpoint_interval are both 0: no checkpoint would ever be signed');
  }
  if (a.store === 'postgres' && !config.state.postgres) err('audit.store', 'audit.store is postgres but no state.postgres block is given');
  validateArchive(config, dir, err);
}

/** `audit.archive`: one target, credentials from safe files, no credentials over plain HTTP to another host. */
function validateArchive(config: PartialConfig, dir: string, err: (path: string, message: string) => void): void {
  const ar = config.audit.archive;
  if (ar === undefined) return;
  if ((ar.directory === undefined) === (ar.s3 === undefined)) err('audit.archive', 'set exactly one of audit.archive.directory and audit.archive.s3');
  if (config.audit.checkpoint_key_file === undefined) err('audit.archive', 'archiving needs audit.checkpoint_key_file: segments end at signed checkpoints, and their manifests are signed with that key');
  if (ar.object_lock === 'required' && ar.retention === 0) err('audit.archive.retention', 'object_lock is required but retention is 0');
  const s3 = ar.s3;
  if (s3 === undefined) return;
  for (const k of ['access_key_id_file', 'secret_access_key_file'] as const) {
    const problem = checkSecretFile(resolve(dir, s3[k]));
    if (problem) err(`audit.archive.s3.${k}`, problem);
  }
  if (s3.endpoint !== undefined) {
    let u: URL | null = null;
    try {
      u = new URL(s3.endpoint);
    } catch {
      err('audit.archive.s3.endpoint', `not a URL: ${JSON.stringify(s3.endpoint)}`);
    }
    if (u !== null) {
      if (u.protocol !== 'https:' && u.protocol !== 'http:') err('audit.archive.s3.endpoint', 'must be an http:// or https:// URL');
      else if (u.username !== '' || u.password !== '') err('audit.archive.s3.endpoint', 'credentials never go in the URL: use access_key_id_file and secret_access_key_file');
      else if (u.search !== '' || u.hash !== '') err('audit.archive.s3.endpoint', 'must not have a query or fragment');
      // Signed requests do not reveal the secret, but the records would cross the network in clear.
      else if (u.protocol === 'http:' && !isLoopbackHost(u.hostname.replace(/^\[|\]$/g, ''))) err('audit.archive.s3.endpoint', 'plain http is only accepted to a loopback address: audit records would cross the network unencrypted (use https, with ca_file for an internal CA)');
    }
  } else if (s3.force_path_style === undefined && s3.bucket.includes('.')) {
    // AWS virtual-hosted URLs put the bucket in the TLS host name; a dotted name breaks the wildcard certificate.
    err('audit.archive.s3.force_path_style', 'a bucket name with dots needs force_path_style: true on AWS (its certificate does not cover bucket.with.dots.s3…)');
  }
  if (s3.ca_file !== undefined) {
    try {
      readFileSync(resolve(dir, s3.ca_file));
    } catch (e) {
      err('audit.archive.s3.ca_file', `cannot read ${s3.ca_file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}
