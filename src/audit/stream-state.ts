/**
 * The instance's stream id and its seq reservation, persisted in `state.dir`:
 *
 *   audit-stream.json  {"stream": "...", "reserved": N, "pid": P}
 *
 * Async mode hands seqs out before records are written (a response is sent before its
 * record is durable); before a seq above `reserved` is handed out, the reservation is
 * raised (by a block) and the file fsync'ed. After a crash, seqs between the stored head
 * and `reserved` may have been handed out and lost: the restart record names that range,
 * and until a restart `gatehouse audit verify` names it itself (`pid` is the writer's
 * process while it runs; a clean stop removes it and hands the reservation back). Sync
 * mode gives seqs out only when records are sealed, so it never reserves ahead: a crash
 * loses no seq.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface StreamState {
  stream: string;
  reserved: number;
  /** The running writer's process id; absent after a clean stop. */
  pid?: number;
}

/** The state file as it is, without creating anything (verification); null when there is none. */
export function readStreamState(dir: string): StreamState | null {
  let text: string;
  try {
    text = readFileSync(streamStateFile(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${streamStateFile(dir)}: ${String(err)}`, { cause: err });
  }
  const st = JSON.parse(text) as StreamState;
  if (typeof st?.stream !== 'string' || typeof st.reserved !== 'number') throw new Error(`${streamStateFile(dir)} is not an audit stream state file`);
  return st;
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
