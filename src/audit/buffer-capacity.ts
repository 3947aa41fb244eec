/**
 * Sizing of the shared buffers a batch crosses threads in (the seal worker's, sealer.ts;
 * the SQLite store's, store/sqlite.ts): a power of two ≥ n and ≥ min, so buffers grow
 * rarely and are kept.
 */
export function capacity(n: number, min: number): number {
  let c = min;
  while (c < n) c *= 2;
  return c;
}
