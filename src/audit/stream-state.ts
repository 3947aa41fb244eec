/**
 * The instance's stream id and its seq reservation, persisted in `state.dir`:
 *
 *   audit-stream.json  {"stream": "...", "reserved": N}
 *
 * Seqs are handed out before records are written; before a seq above `reserved` is
 * handed out, the reservation is raised (by a block) and the file fsync'ed. After a
 * crash, seqs between the stored head and `reserved` may have been handed out and lost:
 * the restart record names that range, so the loss is a detected gap, never a silently
 * valid chain.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface StreamState {
  stream: string;
  reserved: number;
}

export function streamStateFile(dir: string): string {
  return join(dir, 'audit-stream.json');
}

export function loadStreamState(dir: string, configured: string | undefined): StreamState {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let st: StreamState | null = null;
  try {
    st = JSON.parse(readFileSync(streamStateFile(dir), 'utf8')) as StreamState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${streamStateFile(dir)}: ${String(err)}`);
  }
  if (st !== null && configured !== undefined && st.stream !== configured) {
    // A different configured stream: a new stream, from its own genesis (the old one stays verifiable).
    st = { stream: configured, reserved: 0 };
  }
  st ??= { stream: configured ?? `gw-${randomBytes(8).toString('hex')}`, reserved: 0 };
  saveStreamState(dir, st);
  return st;
}

export function saveStreamState(dir: string, st: StreamState): void {
  const file = streamStateFile(dir);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(st));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
