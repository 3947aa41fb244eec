/**
 * Policies are validated against gatehouse's Cedar schema: an attribute typo or a type
 * error is a config error with file, line and column — at `check`, at start and at reload
 * (the serving set stays) — instead of a request refused at run time.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { stringify } from 'yaml';
import { BIN } from '../../testing/harness.js';
import { checkPolicyFiles, loadPolicySet, PolicyLoadError } from './policy-set.js';
import { gatehouseSchema } from './schema.js';
import { readFields } from './body.js';

function file(text: string, name = 'p.cedar'): string {
  const f = join(mkdtempSync(join(tmpdir(), 'gatehouse-schema-')), name);
  writeFileSync(f, text);
  return f;
}

const TYPO = `// the models policy, with a typo on line 4
@id("llm-models")
permit (principal is Agent, action == Action::"POST", resource)
when { principal has domain && principal.domian == resource.domain };
`;

it('an attribute typo is an error at its file, line and column, with the did-you-mean', () => {
  const f = file(TYPO);
  const err = checkPolicyFiles([f]);
  assert.ok(err instanceof PolicyLoadError);
  assert.equal(err.problems.length, 1);
  const p = err.problems[0];
  assert.equal(p?.file, f);
  assert.equal(p?.line, 4);
  assert.equal(p?.column, 32);
  assert.match(p?.message ?? '', /domian/);
  assert.throws(() => loadPolicySet([f]), /domian/);
});

it('a type error (hour compared with a string, a body field of another declared type) is an error with its place', () => {
  const f = file('@id("a") permit(principal, action, resource);\n\n@id("office-hours")\nforbid (principal, action, resource)\n  when { context.hour < "08" };\n');
  const p = checkPolicyFiles([f])?.problems[0];
  assert.equal(p?.line, 5);
  assert.equal(p?.column, 25); // the "08"
  assert.match(p?.message ?? '', /Long|String/);
  assert.equal(p?.policy, 'office-hours');
  const body = file('permit (principal, action, resource) when { context.body has max_tokens && context.body.max_tokens > 1000 };');
  // Undeclared field: not in body_fields.
  assert.match(checkPolicyFiles([body])?.message ?? '', /max_tokens/);
  // Declared, default type String: `>` needs a Long.
  assert.ok(checkPolicyFiles([body], { body_fields: ['max_tokens'] }) !== null);
  // Declared as long: valid.
  assert.equal(checkPolicyFiles([body], { body_fields: ['max_tokens'], body_field_types: { max_tokens: 'long' } }), null);
});

it('the shipped examples validate, and the runtime enforces the declared body field types', () => {
  const dir = new URL('../../../examples/policies/', import.meta.url).pathname;
  for (const f of ['admin.cedar', 'domain-isolation.cedar', 'public.cedar', 'roles.cedar']) assert.equal(checkPolicyFiles([join(dir, f)]), null, f);
  assert.equal(checkPolicyFiles([join(dir, 'models.cedar')], { body_fields: ['model'] }), null);
  const folded = new Set(['max_tokens']);
  const long = { max_tokens: 'long' } as const;
  assert.deepEqual(readFields(Buffer.from('{"max_tokens":5}'), ['max_tokens'], folded, long), { fields: { max_tokens: 5 } });
  assert.deepEqual(readFields(Buffer.from('{"max_tokens":"5"}'), ['max_tokens'], folded, long), { problem: 'field_type' });
  assert.deepEqual(readFields(Buffer.from('{"max_tokens":5}'), ['max_tokens'], folded), { problem: 'field_type' });
});

it('policy/gatehouse.cedarschema is what `gatehouse policy schema` prints, and Cedar reads it', () => {
  const shipped = readFileSync(new URL('../../../policy/gatehouse.cedarschema', import.meta.url), 'utf8');
  assert.equal(shipped, gatehouseSchema(), 'regenerate: node bin/gatehouse.js policy schema > policy/gatehouse.cedarschema');
  const r = spawnSync(process.execPath, [BIN, 'policy', 'schema'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, shipped);
  assert.equal(cedar.checkParseSchema(shipped).type, 'success');
  assert.equal(cedar.checkParseSchema(gatehouseSchema({ body_fields: ['model', 'stream'], body_field_types: { stream: 'boolean' } })).type, 'success');
});

it('`gatehouse check` lists each schema problem with file:line:column; `policy schema --site` prints the site\'s schema', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-check-schema-'));
  writeFileSync(join(dir, 'p.cedar'), TYPO);
  const cfg = {
    listen: [{ address: '127.0.0.1:0' }],
    sites: [{ id: 'llm', hosts: ['llm.test'], upstream: { urls: ['http://127.0.0.1:9'] }, policy: { files: ['p.cedar'], body_fields: ['model'] } }],
  };
  writeFileSync(join(dir, 'gatehouse.yaml'), stringify(cfg));
  const r = spawnSync(process.execPath, [BIN, 'check', '-c', join(dir, 'gatehouse.yaml')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`sites\\[0\\]\\.policy\\.files: ${join(dir, 'p.cedar').replace(/[.]/g, '\\.')}:4:32: .*domian`));
  writeFileSync(join(dir, 'p.cedar'), '@id("m") permit(principal, action, resource) when { context.body has model && context.body.model == "small-1" };');
  assert.equal(spawnSync(process.execPath, [BIN, 'check', '-c', join(dir, 'gatehouse.yaml')], { encoding: 'utf8' }).status, 0);
  const s = spawnSync(process.execPath, [BIN, 'policy', 'schema', '-c', join(dir, 'gatehouse.yaml'), '--site', 'llm'], { encoding: 'utf8' });
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stdout, /"model"\?: String,/);
});

it('a typo guarded by `has` (which Cedar types as false and skips) is an error too', () => {
  const f = file('@id("r")\npermit (principal is Human, action, resource)\nwhen { principal has rolle && principal.rolle == "admin" };\n');
  const p = checkPolicyFiles([f])?.problems;
  assert.equal(p?.length, 1);
  assert.equal(p?.[0]?.line, 3);
  assert.equal(p?.[0]?.column, 22);
  assert.match(p?.[0]?.message ?? '', /principal has no attribute `rolle`; known: subject, type, role, domain, agent/);
  const body = file('permit (principal, action, resource) when { context.body has "modle" && context.body.modle == "x" };');
  assert.match(checkPolicyFiles([body], { body_fields: ['model'] })?.message ?? '', /context\.body has no attribute `modle`/);
});
