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
import { setFlagsFromString } from 'node:v8';
import type * as CedarModule from '@cedar-policy/cedar-wasm/nodejs';

let engine: typeof CedarModule | null = null;

export function cedar(): typeof CedarModule {
  if (engine === null) {
    // V8 compiles a WebAssembly module's functions on as many background threads as it
    // has, and each thread's malloc arena keeps the compiler's freed memory: ~40 MB of
    // resident memory for this module, for good. One compilation thread keeps it in one
    // arena. Compiling is a start-up cost, and was not slower for it on a 2-core machine
    // (a policy set loaded in 150–220 ms instead of 300–450); evaluation runs the same code.
    // Only WebAssembly compilation reads this flag, and Cedar is gatehouse's only module.
    setFlagsFromString('--wasm-num-compilation-tasks=1');
    engine = createRequire(import.meta.url)('@cedar-policy/cedar-wasm/nodejs') as typeof CedarModule;
  }
  return engine;
}
