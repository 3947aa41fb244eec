/**
 * The Cedar engine (@cedar-policy/cedar-wasm), loaded on first use. Loading it compiles a
 * 4 MB WebAssembly module: several tens of MB of resident memory (docs/operations.md#memory)
 * that a gateway without any `policy` block does not pay. The first use is the validation
 * of a config that has a policy (loadConfig: `gatehouse check`, start-up, reload), so a
 * package that cannot load is a start-up or reload error; requests are only ever
 * evaluated against a set loaded before, never load anything.
 *
 * `require`, not `import()`: config validation is synchronous, and the package's `nodejs`
 * build is CommonJS (the same file for `import` and `require`), so this is the module
 * instance an import would give.
 */
import { createRequire } from 'node:module';
import type * as CedarModule from '@cedar-policy/cedar-wasm/nodejs';

let engine: typeof CedarModule | null = null;

export function cedar(): typeof CedarModule {
  if (engine === null) engine = createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs') as typeof CedarModule;
  return engine;
}
