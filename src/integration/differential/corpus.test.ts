/**
 * The differential suite, listed corpus: every hostile spelling in corpus.ts is sent as
 * exact bytes from 127.0.0.9 through gatehouse to Express, Python's wsgiref and nginx
 * (one gateway per framework, same config), and each framework's reading is compared
 * with gatehouse's decision (lab.ts). A failure prints the bytes sent, what gatehouse
 * decided (answer and log line) and what each framework read.
 *
 * `GATEHOUSE_DIFF_ONLY=DIFF` asserts only differentials (the upstream read something else
 * than what gatehouse decided on), not the design's expected answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { corpus, PATHS } from './corpus.js';
import { check, labKey, startLab, type Lab, type Violation } from './lab.js';

const key = await labKey();
const CASES = corpus(key.token);
const kinds: Array<Violation['kind']> = process.env.GATEHOUSE_DIFF_ONLY === 'DIFF' ? ['DIFF'] : ['DIFF', 'SPEC'];

/** Per class: cases, and cases with a differential / with only a design mismatch (printed at the end). */
const summary = new Map<string, { cases: number; diff: string[]; spec: string[] }>();

describe('differential suite: listed corpus through Express, wsgiref and nginx', { concurrency: false }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab({ key });
  });
  after(async () => {
    await lab?.close();
    const rows = [...summary.entries()].map(([cls, s]) => `  ${cls.padEnd(12)} cases ${String(s.cases).padStart(3)}  differential ${String(s.diff.length).padStart(3)}  design-only ${String(s.spec.length).padStart(3)}`);
    console.log(`differential corpus summary (frameworks: ${lab?.targets.map((t) => t.fw.name).join(', ')})\n${rows.join('\n')}`);
    for (const [cls, s] of summary) for (const n of s.diff) console.log(`  DIFF ${cls}: ${n}`);
  });

  CASES.forEach((c, i) => {
    it(`${c.cls}: ${c.name}`, async () => {
      const { report, violations } = await check(lab, c, `d${i}`);
      const s = summary.get(c.cls) ?? { cases: 0, diff: [], spec: [] };
      summary.set(c.cls, s);
      s.cases++;
      const diffs = violations.filter((x) => x.v.kind === 'DIFF');
      if (diffs.length > 0) s.diff.push(`${c.name} [${[...new Set(diffs.map((x) => x.fw))].join(',')}]`);
      else if (violations.length > 0) s.spec.push(c.name);
      const shown = violations.filter((x) => kinds.includes(x.v.kind));
      if (shown.length > 0) assert.fail(`\n${report}`);
    });
  });
});

describe('differential suite: the listed paths again with escaped_path: decode', { concurrency: false }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab({ key, extra: { http: { request: { escaped_path: 'decode' } } } });
  });
  after(async () => {
    await lab?.close();
  });

  // The same oracle; the answers `expect` describes are the default setting's, so they are left out.
  PATHS.forEach((c, i) => {
    it(`paths (decode): ${c.name}`, async () => {
      const { report, violations } = await check(lab, { cls: c.cls, name: c.name, requests: c.requests, ...(c.from === undefined ? {} : { from: c.from }) }, `e${i}`);
      if (violations.some((x) => kinds.includes(x.v.kind))) assert.fail(`\n${report}`);
    });
  });
});
