/**
 * Logging IP-filter denials without letting a flood of them flood the log. Every denial
 * is counted (metrics); log lines are budgeted per minute. Within the budget each denial
 * gets its own line; past it, denials are aggregated per client address and written as
 * one summary line per interval: `{ suppressed, addresses, top: [{ip, count}, ...] }`.
 * The per-address table is bounded, so a spray of addresses costs bounded memory; the
 * overflow is still counted in `suppressed`.
 */
import type { Logger } from './logger.js';

const MAX_TRACKED = 10_000;

export interface DenialLog {
  record(clientIp: string, site: string, list: string): void;
  /** Writes the pending summary (also on a timer); used at shutdown and by tests. */
  flush(): void;
  /** Applies a reloaded `log.denial_lines_per_minute` from the next interval on. */
  setBudget(linesPerMinute: number): void;
  close(): void;
}

export function createDenialLog(log: Logger, linesPerMinute: number, intervalMs = 60_000): DenialLog {
  let budget = linesPerMinute;
  let suppressed = 0;
  const counts = new Map<string, number>();
  let untracked = 0;

  function flush(): void {
    if (suppressed > 0) {
      const top = [...counts.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([ip, count]) => ({ ip, count }));
      log.warn({ event: 'ip_denied_summary', suppressed, addresses: counts.size + (untracked > 0 ? 1 : 0), untracked, top }, 'ip filter denials (aggregated)');
    }
    suppressed = 0;
    untracked = 0;
    counts.clear();
    budget = linesPerMinute;
  }
  const timer = setInterval(flush, intervalMs);
  timer.unref();

  return {
    record(clientIp, site, list) {
      if (budget > 0) {
        budget--;
        log.warn({ event: 'ip_denied', client_ip: clientIp, site, list }, 'connection closed by ip filter');
        return;
      }
      suppressed++;
      const c = counts.get(clientIp);
      if (c !== undefined) counts.set(clientIp, c + 1);
      else if (counts.size < MAX_TRACKED) counts.set(clientIp, 1);
      else untracked++;
    },
    flush,
    setBudget(n) {
      linesPerMinute = n;
    },
    close() {
      clearInterval(timer);
      flush();
    },
  };
}
