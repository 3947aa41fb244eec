/**
 * process.heap_growing_percent (docs/operations.md#memory): how far V8 lets the old
 * generation grow past what survived the last full collection before it collects again.
 *
 * Under load most of the gateway's resident memory is V8 heap waiting for a collection, not
 * live data: requests and audit records in flight outlive a scavenge or two and are
 * promoted, and with its own choice of factor (up to 4× the live size on a machine with a
 * large heap limit) V8 lets that garbage pile up before a mark-compact. A fixed factor
 * bounds it; the price is more frequent full collections (measured in docs/operations.md).
 *
 * V8 reads the flag whenever it recomputes the limit, after every full collection, so
 * setting it at start-up and at reload takes effect at once. 0 hands the choice back to V8.
 */
import { setFlagsFromString } from 'node:v8';

let applied: number | null = null;

export function applyHeapGrowth(percent: number): void {
  if (percent === applied) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  applied = percent;
}
