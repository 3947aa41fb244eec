/**
 * `gatehouse run` as a child process (what an operator or a service manager starts), with
 * its JSON log lines collected, for tests that need a real process: privilege drop,
 * signals, /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './harness.js';

export interface RunningGatehouse {
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  /** stderr so far. */
  stderr(): string;
  /** Resolves with the first log line (already seen or later) that matches. */
  waitFor(match: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Starts `[wrapper...] node bin/gatehouse.js run --config FILE` (wrapper: e.g. setpriv with capabilities). */
export function runGatehouse(config: string, opts: { wrapper?: string[]; env?: NodeJS.ProcessEnv; args?: string[] } = {}): RunningGatehouse {
  const cmd = [...(opts.wrapper ?? []), process.execPath, BIN, ...(opts.args ?? ['run', '--config', config])];
  const child = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; ok: (l: Record<string, unknown>) => void }> = [];
  let err = '';
  let buf = '';
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let l: Record<string, unknown>;
      try {
        l = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(l);
      for (const w of [...waiters]) {
        if (w.match(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.ok(l);
        }
      }
    }
  });
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return {
    child,
    logs,
    exited,
    stderr: () => err,
    waitFor(match, ms = 20_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`no matching log line within ${ms} ms; stderr: ${err}; logs: ${JSON.stringify(logs).slice(0, 2000)}`)), ms);
        void exited.then((code) => {
          clearTimeout(t);
          fail(new Error(`gatehouse exited (${code}) before the expected log line; stderr: ${err}`));
        });
        waiters.push({
          match,
          ok: (l) => {
            clearTimeout(t);
            ok(l);
          },
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
