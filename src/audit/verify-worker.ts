/**
 * A worker thread of the parallel verifier (verify-parallel.ts): it reads the ranges it is
 * given itself — a SQLite file opened read-only, its own PostgreSQL connection, or byte
 * ranges of an export file — and checks each with a RangeChecker (verify-range.ts). One
 * task at a time, in arrival order; every task gets one reply. A task that fails to read
 * (an I/O or database error) replies `ok: false` with the reason: the caller then
 * verifies sequentially, which reports the error itself.
 */
import Database from 'better-sqlite3';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { MacKey } from './chain-hash.js';
import { RangeChecker, type RangeResult } from './verify-range.js';
import type { CloseTask, RangeSource, RangeTask, WorkerInit } from './verify-parallel-protocol.js';
import { StoredLeafHasher } from './verify.js';

const port = parentPort;
if (port === null) throw new Error('verify-worker.js runs only as a worker thread of the parallel verifier');
const init = workerData as WorkerInit;

const keys: ((kid: string) => MacKey | undefined) | null = (() => {
  if (init.keys === null) return null;
  const m = new Map<string, MacKey>();
  for (const [id, ipad, opad] of init.keys) m.set(id, { ipad: Buffer.from(ipad), opad: Buffer.from(opad) });
  return (kid: string) => m.get(kid);
})();
const hasher = new StoredLeafHasher();

interface Reader {
  read(task: RangeTask, checker: RangeChecker): Promise<void> | void;
  close(): Promise<void> | void;
}

function sqliteReader(src: Extract<RangeSource, { kind: 'sqlite' }>): Reader {
  const db = new Database(src.file, { readonly: true, fileMustExist: true });
  // By row id and `+stream` (not the stream index), as the store's sequential reader does:
  // every row the sequential verifier would read, and no other.
  const bounded = db.prepare('SELECT data FROM audit_records WHERE id > ? AND id <= ? AND +stream = ? ORDER BY id').pluck();
  const open = db.prepare('SELECT data FROM audit_records WHERE id > ? AND +stream = ? ORDER BY id').pluck();
  return {
    read(task, checker) {
      const rows = (task.hi === null ? open.all(task.lo, task.stream) : bounded.all(task.lo, task.hi, task.stream)) as string[];
      for (const d of rows) {
        checker.add(d);
        if (!checker.going) return;
      }
    },
    close: () => void db.close(),
  };
}

async function postgresReader(src: Extract<RangeSource, { kind: 'postgres' }>): Promise<Reader> {
  // Loaded only here: the client module (config, TLS) takes longer to load than a SQLite or export worker needs to start.
  const { createPostgresClient } = await import('../stores/postgres-client.js');
  const sql = createPostgresClient(src.config, src.configDir, { max: 1, ca: src.ca });
  const table = sql(`${src.config.schema}.audit_records`);
  return {
    async read(task, checker) {
      const rows = await (task.hi === null
        ? sql`SELECT data FROM ${table} WHERE stream = ${task.stream} AND id > ${task.lo} ORDER BY id`.values()
        : sql`SELECT data FROM ${table} WHERE stream = ${task.stream} AND id > ${task.lo} AND id <= ${task.hi} ORDER BY id`.values());
      for (const row of rows) {
        checker.add(row[0] as string);
        if (!checker.going) return;
      }
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

function exportReader(src: Extract<RangeSource, { kind: 'export' }>): Reader {
  const fd = openSync(src.file, 'r');
  let buf = Buffer.allocUnsafe(1 << 20);
  return {
    read(task, checker) {
      // [lo, hi) starts at a line and ends after one: the text decodes whole.
      const len = (task.hi as number) - task.lo;
      if (len > buf.length) buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, task.lo + got);
        if (n === 0) return checker.giveUp('the export file is shorter than it was');
        got += n;
      }
      const text = buf.toString('utf8', 0, len);
      let at = 0;
      while (at < text.length) {
        let nl = text.indexOf('\n', at);
        if (nl < 0) nl = text.length;
        if (nl > at) {
          // Exactly as `audit export` writes it: {"record":<stored form>}.
          if (!text.startsWith('{"record":', at) || text.charCodeAt(nl - 1) !== 0x7d) return checker.giveUp('a line that is not a record line');
          checker.add(text.slice(at + 10, nl - 1));
          if (!checker.going) return;
        }
        at = nl + 1;
      }
    },
    close: () => closeSync(fd),
  };
}

const opened: Promise<Reader> = init.source.kind === 'sqlite' ? Promise.resolve().then(() => sqliteReader(init.source as Extract<RangeSource, { kind: 'sqlite' }>)) : init.source.kind === 'postgres' ? postgresReader(init.source) : Promise.resolve().then(() => exportReader(init.source as Extract<RangeSource, { kind: 'export' }>));
// Opening failed (a missing file, a bad URL): every task says so, and the caller verifies sequentially.
opened.catch(() => undefined);

// Tasks run one after another (a PostgreSQL read awaits): a queue keeps their order.
let chain: Promise<void> = Promise.resolve();
port.on('message', (task: RangeTask | CloseTask) => {
  chain = chain.then(async () => {
    if ('close' in task) {
      await opened.then((r) => r.close()).catch(() => undefined);
      port.close();
      return;
    }
    let result: RangeResult;
    try {
      const reader = await opened;
      const checker = new RangeChecker({ stream: task.stream, seqOffset: task.seqOffset, cpSeqs: task.cpSeqs }, keys, hasher);
      await reader.read(task, checker);
      result = checker.result();
    } catch (err) {
      result = { ok: false, why: `reading the range failed: ${(err as Error).message}` };
    }
    port.postMessage({ id: task.id, result });
  });
});
