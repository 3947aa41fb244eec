import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERROR_CODES } from './codes.js';

it('docs/errors.md lists exactly the codes of the registry, with their statuses', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const line of doc.split('\n')) {
    const m = /^\|\s*`([a-z_]+)`\s*\|\s*([^|]+?)\s*\|/.exec(line);
    if (m) rows.set(m[1] as string, m[2] as string);
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    const documented = rows.get(code);
    if (status === 0) assert.match(documented ?? '', /^—|^-|none/i, code);
    else assert.equal(documented, String(status), code);
  }
});

it('every code is snake_case and every status is a client or server error (or 0 for a drop)', () => {
  for (const [code, { status, message }] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[a-z]+(_[a-z]+)*$/);
    assert.ok(status === 0 || (status >= 400 && status < 600), code);
    assert.ok(message.length > 0 && !/\n/.test(message));
  }
});
