/**
 * Parsers for the human units in config: durations ("250ms", "10s", "1m", "1h", "1d")
 * and sizes ("512", "16KiB", "10MiB", "1GB"). Plain numbers are milliseconds / bytes.
 */
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(v: string | number): number | null {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : null;
  const m = DURATION.exec(v.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * (DURATION_MS[m[2] as string] as number));
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i;
const SIZE_BYTES: Record<string, number> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1_000_000,
  mib: 1024 * 1024,
  gb: 1_000_000_000,
  gib: 1024 * 1024 * 1024,
};

export function parseSize(v: string | number): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : null;
  const m = SIZE.exec(v.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * (SIZE_BYTES[(m[2] ?? 'b').toLowerCase()] as number));
}
