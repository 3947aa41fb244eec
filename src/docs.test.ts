/**
 * The docs say what exists: each test lists EVERY missing item at once, so one run shows
 * all there is to write. The matching rules are deliberately simple; to comply:
 *
 * 1. Config keys (docs/configuration.md). Every key of the schema (src/config/schema.ts),
 *    written as its path with `[]` for a list element (`listen[].tls.cert_file`,
 *    `sites[].policy.shadow_files`; a record's values count as `*`), is documented when
 *    the file holds, between backticks, the whole path or any dotted suffix of it that
 *    ends in the key: `` `sites[].policy.shadow_files` ``, `` `policy.shadow_files` `` and
 *    `` `shadow_files` `` all count. So a key in a section's table (`| `shadow_files` |`)
 *    is enough. A block (`auth.claims`) also counts as documented when a key inside it is
 *    (`auth.claims.subject`). Keys kept only to be refused (`deprecated` below) are exempt.
 * 2. Metrics (docs/operations.md). Every `name: 'gatehouse_...'` in
 *    src/observability/metrics.ts appears in the file (anywhere, as text).
 * 3. Error codes: src/errors/codes.test.ts already compares src/errors/codes.ts with
 *    docs/errors.md; not repeated here.
 * 4. CLI commands (README.md, DEVELOPERS.md, docs/*.md). Every command of `gatehouse
 *    --help` (COMMANDS in src/cli/main.ts) appears as `gatehouse <command>`, and every
 *    subcommand of its `SPEC` (src/cli/args.ts CommandSpec.subcommands) as
 *    `gatehouse <command> <subcommand>`, anywhere in the text.
 * 5. Links (README.md, DEVELOPERS.md, docs/*.md). Every relative markdown link
 *    `[text](target)` outside fenced code blocks resolves: the file (relative to the
 *    linking file) exists, and a `#anchor` is the GitHub slug of a heading in the target
 *    markdown file (lowercase; punctuation other than `-` and `_` dropped; spaces to
 *    `-`; a repeated heading gets `-1`, `-2`, ...). Absolute URLs are not checked.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import type { z } from 'zod';
import type { CommandSpec } from './cli/args.js';
import { COMMANDS } from './cli/main.js';
import { configSchema } from './config/schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');
const DOC_FILES = ['README.md', 'DEVELOPERS.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Keys the schema keeps only to refuse them with a message saying what to use instead. */
const deprecated = new Set(['sites[].policy.shadow']);

function report(what: string, missing: string[]): void {
  assert.deepEqual(missing, [], `${missing.length} ${what}:\n  ${missing.join('\n  ')}`);
}

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType; element?: z.ZodType; valueType?: z.ZodType; options?: z.ZodType[] };
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Every key path of a schema (objects inside wrappers, lists, records and unions included). */
function keyPaths(schema: z.ZodType, prefix: string, out: Set<string>): void {
  const d = defOf(schema);
  switch (d.type) {
    case 'object':
      for (const [k, v] of Object.entries(d.shape ?? {})) {
        const path = prefix === '' ? k : `${prefix}.${k}`;
        out.add(path);
        keyPaths(v, path, out);
      }
      return;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
      if (d.innerType) keyPaths(d.innerType, prefix, out);
      return;
    case 'pipe':
      if (d.in) keyPaths(d.in, prefix, out);
      if (d.out) keyPaths(d.out, prefix, out);
      return;
    case 'array':
      if (d.element) keyPaths(d.element, `${prefix}[]`, out);
      return;
    case 'record':
      if (d.valueType) keyPaths(d.valueType, `${prefix}.*`, out);
      return;
    case 'union':
      for (const o of d.options ?? []) keyPaths(o, prefix, out);
      return;
    default:
      return;
  }
}

it('docs/configuration.md documents every config key of the schema', () => {
  const doc = read('docs/configuration.md');
  const quoted = new Set([...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string));
  const paths = new Set<string>();
  keyPaths(configSchema as unknown as z.ZodType, '', paths);
  assert.ok(paths.size > 100, `the schema walk found only ${paths.size} keys`);
  const documented = (path: string): boolean => {
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      const suffix = parts.slice(i).join('.');
      if (quoted.has(suffix) || quoted.has(suffix.replace(/\[\]$/, '')) || quoted.has(suffix.replaceAll('[]', ''))) return true;
    }
    return false;
  };
  const found = new Set([...paths].filter(documented));
  const missing = [...paths].filter((path) => {
    if (found.has(path) || deprecated.has(path) || path.endsWith('.*')) return false;
    for (const f of found) if (f.startsWith(`${path}.`) || f.startsWith(`${path}[].`)) return false;
    return true;
  });
  report('config keys not documented in docs/configuration.md', missing.sort());
});

it('docs/operations.md names every metric defined in src/observability/metrics.ts', () => {
  const doc = read('docs/operations.md');
  const names = [...read('src/observability/metrics.ts').matchAll(/name: '(gatehouse_[a-z0-9_]+)'/g)].map((m) => m[1] as string);
  assert.ok(names.length > 10, `found only ${names.length} metrics`);
  report('metrics not in docs/operations.md', names.filter((n) => !doc.includes(n)));
});

it('the docs name every CLI command and subcommand', async () => {
  const docs = DOC_FILES.map(read).join('\n');
  const wanted = new Set<string>();
  for (const [name, c] of Object.entries(COMMANDS)) {
    wanted.add(`gatehouse ${name}`);
    const spec = ((await c.load()) as { SPEC?: CommandSpec }).SPEC;
    for (const sub of Object.keys(spec?.subcommands ?? {})) wanted.add(`gatehouse ${name} ${sub}`);
  }
  assert.ok(wanted.size > 15, `found only ${wanted.size} commands`);
  report('CLI commands not named in README.md, DEVELOPERS.md or docs/*.md', [...wanted].filter((w) => !docs.includes(w)).sort());
});

/** GitHub's heading anchors of a markdown file. */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const slug = (h[1] as string)
        .toLowerCase()
        .replace(/<[^>]+>/g, '')
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-');
      const n = seen.get(slug) ?? 0;
      seen.set(slug, n + 1);
      out.add(n === 0 ? slug : `${slug}-${n}`);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(a[1] as string);
  }
  return out;
}

it('every relative link in README.md, DEVELOPERS.md and docs/*.md resolves, file and #anchor', () => {
  const missing: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (abs: string): Set<string> => {
    let a = anchorCache.get(abs);
    if (a === undefined) anchorCache.set(abs, (a = anchors(readFileSync(abs, 'utf8'))));
    return a;
  };
  for (const file of DOC_FILES) {
    const text = read(file);
    let fenced = false;
    text.split('\n').forEach((line, i) => {
      if (/^\s*```/.test(line)) fenced = !fenced;
      if (fenced) return;
      // Inline code is not a link: `[a](b)` inside backticks is left alone.
      const plain = line.replace(/`[^`]*`/g, '');
      for (const m of plain.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
        const abs = pathPart === '' ? join(ROOT, file) : resolve(dirname(join(ROOT, file)), decodeURI(pathPart));
        const where = `${file}:${i + 1} (${target})`;
        if (!existsSync(abs)) {
          missing.push(`${where}: no file ${relative(ROOT, abs)}`);
          continue;
        }
        if (anchor !== undefined && abs.endsWith('.md') && !anchorsOf(abs).has(anchor)) missing.push(`${where}: no heading #${anchor} in ${relative(ROOT, abs)}`);
      }
    });
  }
  report('broken links', missing);
});
