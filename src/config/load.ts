/**
 * Loading a config file: YAML → inline-secret scan → schema → cross-field validation →
 * frozen object. Every problem is collected (never stop at the first) with its path in
 * the file, so `gatehouse check` can list them all at once.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { configSchema, siteSchema, type Config, type SiteConfig } from './schema.js';
import { CREDENTIAL_PREFIX, isSecretKeyName, resolveCredential, urlHasInlinePassword } from './secrets.js';
import { validateConfig } from './validate.js';

/** A config where some parts may have failed their schema (sites left as undefined). */
export type PartialConfig = Omit<Config, 'sites'> & { sites: ReadonlyArray<SiteConfig | undefined> };

export interface Problem {
  /** Path in the file, e.g. `sites[0].rate_limits[1].window`; `(file)` for the whole file. */
  readonly path: string;
  readonly message: string;
  readonly severity: 'error' | 'warning';
}

export interface LoadedConfig {
  readonly config: Readonly<Config>;
  /** Absolute path of the file, and its directory (relative paths in config resolve here). */
  readonly file: string;
  readonly dir: string;
  readonly warnings: readonly Problem[];
}

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(
    readonly file: string,
    readonly problems: readonly Problem[],
  ) {
    super(`${file}: ${problems.filter((p) => p.severity === 'error').length} problem(s)\n${formatProblems(problems)}`);
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `  ${p.severity === 'error' ? 'error  ' : 'warning'} ${p.path}: ${p.message}`).join('\n');
}

/** Walks the raw document for inline secrets before the schema sees it. */
function scanInlineSecrets(node: unknown, path: PropertyKey[], out: Problem[], flagged: Set<string>): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => scanInlineSecrets(v, [...path, i], out, flagged));
    return;
  }
  if (node === null || typeof node !== 'object') {
    if (typeof node === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(node) && urlHasInlinePassword(node)) {
      out.push({ path: formatPath(path), message: 'inline secret: a URL may not carry a password; use the matching *_file key', severity: 'error' });
    }
    return;
  }
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    const p = [...path, k];
    if (isSecretKeyName(k) && (typeof v === 'string' || typeof v === 'number')) {
      // Never echo the value: the message names the key only.
      out.push({ path: formatPath(p), message: `inline secret: put the value in a file (mode 0600) and reference it with \`${k}_file\``, severity: 'error' });
      flagged.add(formatPath(p));
      continue;
    }
    scanInlineSecrets(v, p, out, flagged);
  }
}

/** A key whose value names a file (`*_file`, `file`, or an element of `files`). */
function isFileKey(key: string): boolean {
  return key === 'file' || key === 'files' || /_file$/.test(key);
}

/**
 * Replaces every `credential:NAME` file reference with its path in
 * `$CREDENTIALS_DIRECTORY` (one rule for every file key, secret or not), before the
 * schema sees the document, so the rest of the gateway only ever sees paths.
 */
function resolveCredentialRefs(node: unknown, path: PropertyKey[], out: Problem[], fileKey = false): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => {
      if (fileKey && typeof v === 'string' && v.startsWith(CREDENTIAL_PREFIX)) node[i] = credentialPath(v, [...path, i], out);
      else resolveCredentialRefs(v, [...path, i], out);
    });
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    if (isFileKey(k) && typeof v === 'string' && v.startsWith(CREDENTIAL_PREFIX)) obj[k] = credentialPath(v, [...path, k], out);
    else resolveCredentialRefs(v, [...path, k], out, isFileKey(k));
  }
}

function credentialPath(ref: string, path: PropertyKey[], out: Problem[]): string {
  const r = resolveCredential(ref);
  if ('path' in r) return r.path;
  out.push({ path: formatPath(path), message: r.error, severity: 'error' });
  return ref;
}

function schemaProblems(error: z.ZodError, flagged: Set<string>): Problem[] {
  const out: Problem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = formatPath([...issue.path, key]);
        if (flagged.has(path)) continue;
        out.push({ path, message: 'unknown key', severity: 'error' });
      }
      continue;
    }
    out.push({ path: formatPath(issue.path), message: issue.message, severity: 'error' });
  }
  return out;
}

/** Parses and validates config text. Throws ConfigError listing every problem. */
export function parseConfig(text: string, file: string): LoadedConfig {
  const abs = resolve(file);
  const dir = dirname(abs);
  const problems: Problem[] = [];
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    problems.push({ path: pos ? `(yaml line ${pos.line} col ${pos.col})` : '(yaml)', message: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''), severity: 'error' });
  }
  if (problems.length > 0) throw new ConfigError(abs, problems);
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(abs, [{ path: '(file)', message: 'the config must be a YAML mapping', severity: 'error' }]);
  }
  const flagged = new Set<string>();
  scanInlineSecrets(raw, [], problems, flagged);
  resolveCredentialRefs(raw, [], problems);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    problems.push(...schemaProblems(parsed.error, flagged));
    // List cross-field problems too, on whatever parts did parse, so one `check` run
    // shows everything.
    problems.push(...validateConfig(bestEffort(raw as Record<string, unknown>), dir, abs));
    throw new ConfigError(abs, dedupe(problems));
  }
  problems.push(...validateConfig(parsed.data, dir, abs));
  if (problems.some((p) => p.severity === 'error')) throw new ConfigError(abs, problems);
  return { config: deepFreeze(parsed.data), file: abs, dir, warnings: problems };
}

/**
 * Parses each top-level key (and each site) on its own; a part that fails its schema is
 * replaced by its default (or left out, for a site) so cross-field validation can still
 * run on the rest.
 */
function bestEffort(raw: Record<string, unknown>): PartialConfig {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(configSchema.shape)) {
    if (key === 'sites') continue;
    const r = (schema as z.ZodType).safeParse(raw[key]);
    if (r.success) out[key] = r.data;
    else {
      const d = (schema as z.ZodType).safeParse(undefined);
      if (d.success) out[key] = d.data;
    }
  }
  out.sites = Array.isArray(raw.sites) ? raw.sites.map((site) => salvageSite(site)) : [];
  return out as unknown as PartialConfig;
}

/** A site that fails its schema, field by field (rate-limit rules one by one). */
function salvageSite(site: unknown): SiteConfig | undefined {
  const r = siteSchema.safeParse(site);
  if (r.success) return r.data;
  if (site === null || typeof site !== 'object' || Array.isArray(site)) return undefined;
  const raw = site as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(siteSchema.shape)) {
    if (key === 'rate_limits' && Array.isArray(raw[key])) {
      const rule = siteSchema.shape.rate_limits.unwrap().element;
      out[key] = (raw[key] as unknown[]).map((x) => {
        const p = rule.safeParse(x);
        return p.success ? p.data : undefined;
      });
      continue;
    }
    const p = (schema as z.ZodType).safeParse(raw[key]);
    if (p.success) out[key] = p.data;
  }
  return out as unknown as SiteConfig;
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * A config for a command that uses only some top-level sections (`gatehouse audit
 * migrate`: `state`, `audit`, `ca`): those sections are validated as `parseConfig` does,
 * every other one may be absent (default; `sites` none) and is not checked. So the
 * PostgreSQL schema owner's config holds the store settings only — not the gateway's
 * sites, keys and secrets (deploy/kubernetes/audit-migrate-job.yaml) — while the
 * gateway's own config works as well.
 */
export function loadConfigSections(file: string, sections: ReadonlyArray<keyof Config>): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, [{ path: '(file)', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, severity: 'error' }]);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) return parseConfig(text, file); // names the YAML errors
  const raw = doc.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return parseConfig(text, file);
  const problems: Problem[] = [];
  const picked: Record<string, unknown> = {};
  for (const k of sections) if (raw[k] !== undefined) picked[k] = raw[k];
  const flagged = new Set<string>();
  scanInlineSecrets(picked, [], problems, flagged);
  resolveCredentialRefs(picked, [], problems);
  const parsed = configSchema.extend({ sites: z.array(siteSchema) }).safeParse({ ...picked, sites: [] });
  if (!parsed.success) throw new ConfigError(abs, [...problems, ...schemaProblems(parsed.error, flagged)]);
  const inSection = (p: Problem) => sections.some((k) => p.path === k || p.path.startsWith(`${k}.`) || p.path.startsWith(`${k}[`));
  problems.push(...validateConfig(parsed.data, dirname(abs), abs).filter(inSection));
  if (problems.some((p) => p.severity === 'error')) throw new ConfigError(abs, problems);
  return { config: deepFreeze(parsed.data), file: abs, dir: dirname(abs), warnings: problems };
}

/**
 * The schema-valid config of a file that may fail cross-field validation (a secret file
 * with unsafe permissions, say), for `gatehouse doctor`, which reports such faults per
 * check instead of stopping at "invalid". Null when the file does not even parse.
 */
export function loadUnvalidated(file: string): { config: Readonly<Config>; file: string; dir: string } | null {
  try {
    const abs = resolve(file);
    const doc = parseDocument(readFileSync(abs, 'utf8'), { uniqueKeys: true });
    if (doc.errors.length > 0) return null;
    const raw: unknown = doc.toJS({ maxAliasCount: 100 });
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
    resolveCredentialRefs(raw, [], []);
    const parsed = configSchema.safeParse(raw);
    return parsed.success ? { config: deepFreeze(parsed.data), file: abs, dir: dirname(abs) } : null;
  } catch {
    return null;
  }
}

export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(resolve(file), [{ path: '(file)', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, severity: 'error' }]);
  }
  return parseConfig(text, file);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
