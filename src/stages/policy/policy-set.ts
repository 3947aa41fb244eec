/**
 * Loading Cedar policy files into one pre-parsed policy set. Every policy gets a stable id
 * (its `@id("...")` annotation, else `<file name>:<n>` for the n-th policy of the file), so
 * logs and audit records name the policies that decided. A file that cannot be read or
 * parsed is an error naming the file: the caller refuses to start or keeps the last good
 * set (fail closed, never "no policy").
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type * as Cedar from '@cedar-policy/cedar-wasm/nodejs';
import { cedar } from './cedar.js';
import { formatPolicyProblem, gatehouseSchema, validatePolicies, type PolicyProblem, type PolicySource, type SchemaSite } from './schema.js';

export class PolicyLoadError extends Error {
  readonly code = 'policy_invalid';
  constructor(
    readonly file: string,
    message: string,
    /** Schema validation problems, each with file, line and column (empty for read/parse errors). */
    readonly problems: readonly PolicyProblem[] = [],
  ) {
    super(`${file}: ${message}`);
  }
}

export interface LoadedPolicySet {
  /** The id the set is pre-parsed under in the WASM module (unique per load). */
  readonly pid: string;
  readonly ids: readonly string[];
  /** SHA-256 over the files' contents: a file event without a change does not reload. */
  readonly digest: string;
  /** The context fields the policies read; the others stay out of the evaluation and the cache key. */
  readonly uses: ContextUse;
}

export interface ContextUse {
  readonly ip: boolean;
  readonly path: boolean;
  readonly method: boolean;
  readonly hour: boolean;
  readonly weekday: boolean;
  readonly body: boolean;
}

const CONTEXT_FIELDS = ['ip', 'path', 'method', 'hour', 'weekday', 'body'] as const;
const ALL: ContextUse = Object.freeze({ ip: true, path: true, method: true, hour: true, weekday: true, body: true });

/**
 * Which context fields the policies can read. Conservative: any mention of `context`
 * other than `context.<field>` (e.g. `context has ip`, `context["ip"]`, a comment) means
 * every field. Leaving out what no policy reads keeps the decision cache small (a site
 * whose policies ignore the client IP does not cache per IP).
 */
export function contextUse(texts: readonly string[]): ContextUse {
  const used: Record<string, boolean> = {};
  for (const text of texts) {
    for (const m of text.matchAll(/\bcontext\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?/g)) {
      const field = m[2];
      if (field === undefined || !(CONTEXT_FIELDS as readonly string[]).includes(field)) return ALL;
      used[field] = true;
    }
  }
  return Object.freeze({ ip: used.ip === true, path: used.path === true, method: used.method === true, hour: used.hour === true, weekday: used.weekday === true, body: used.body === true });
}

interface ReadFiles {
  readonly policies: Record<string, string>;
  readonly digest: string;
  /** Where each policy is, for validation messages with line and column. */
  readonly sources: Map<string, PolicySource>;
}

const ANNOTATED_ID = /^\s*@id\(\s*"((?:[^"\\]|\\.){1,200})"\s*\)/;
let loads = 0;

function firstError(errors: ReadonlyArray<{ message: string }>): string {
  return errors.map((e) => e.message).join('; ') || 'invalid policy';
}

/** Reads and splits the files; throws PolicyLoadError naming the first file that fails. */
export function readPolicyFiles(files: readonly string[]): ReadFiles {
  const policies: Record<string, string> = {};
  const sources = new Map<string, PolicySource>();
  const hash = createHash('sha256');
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PolicyLoadError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    hash.update(file).update('\0').update(text).update('\0');
    let parts: Cedar.PolicySetTextToPartsAnswer;
    try {
      parts = cedar().policySetTextToParts(text);
    } catch (err) {
      throw new PolicyLoadError(file, String(err));
    }
    if (parts.type === 'failure') throw new PolicyLoadError(file, firstError(parts.errors));
    if (parts.policy_templates.length > 0) throw new PolicyLoadError(file, 'policy templates are not supported; write static policies');
    if (parts.policies.length === 0) throw new PolicyLoadError(file, 'the file holds no policy');
    let from = 0;
    parts.policies.forEach((p, i) => {
      const id = ANNOTATED_ID.exec(p)?.[1] ?? `${basename(file)}:${i + 1}`;
      if (policies[id] !== undefined) throw new PolicyLoadError(file, `duplicate policy id ${JSON.stringify(id)}`);
      policies[id] = p;
      // The parts are the file's own text, in order; where one is not found, line 1.
      const at = text.indexOf(p, from);
      if (at >= 0) from = at + p.length;
      sources.set(id, { file, text, offset: Math.max(at, 0) });
    });
  }
  return { policies, digest: hash.digest('hex'), sources };
}

/** Validation against the site's schema (strict); throws PolicyLoadError listing every problem. */
function validateRead(read: ReadFiles, files: readonly string[], site: SchemaSite | undefined): void {
  const problems = validatePolicies(read.policies, read.sources, gatehouseSchema(site), site);
  if (problems.length > 0) {
    throw new PolicyLoadError(problems[0]?.file ?? files.join(', '), `${problems.length} policy schema error(s): ${problems.map(formatPolicyProblem).join('; ')}`, problems);
  }
}

/** Reads, parses, validates against the schema and pre-parses the files into the WASM module's policy-set cache. */
export function loadPolicySet(files: readonly string[], site?: SchemaSite): LoadedPolicySet {
  const read = readPolicyFiles(files);
  validateRead(read, files, site);
  const pid = `gatehouse-${++loads}`;
  let answer: Cedar.CheckParseAnswer;
  try {
    answer = cedar().preparsePolicySet(pid, { staticPolicies: read.policies });
  } catch (err) {
    throw new PolicyLoadError(files.join(', '), String(err));
  }
  if (answer.type === 'failure') throw new PolicyLoadError(files.join(', '), firstError(answer.errors));
  const uses = contextUse(Object.values(read.policies));
  return Object.freeze({ pid, ids: Object.freeze(Object.keys(read.policies)), digest: read.digest, uses });
}

/** For `gatehouse check`: the problem with the files, or null. Does not keep anything. */
export function checkPolicyFiles(files: readonly string[], site?: SchemaSite): PolicyLoadError | null {
  try {
    const read = readPolicyFiles(files);
    const answer = cedar().checkParsePolicySet({ staticPolicies: read.policies });
    if (answer.type === 'failure') return new PolicyLoadError(files.join(', '), firstError(answer.errors));
    validateRead(read, files, site);
    return null;
  } catch (err) {
    if (err instanceof PolicyLoadError) return err;
    return new PolicyLoadError(files.join(', '), String(err));
  }
}
