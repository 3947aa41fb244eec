/**
 * Policy sets per site, kept across config generations, and their hot reload.
 *
 * A handle holds what a site enforces and, in shadow mode, what it only evaluates. Each
 * loaded set has its own decision cache, so swapping the set is the cache invalidation.
 * The handle watches the directories of its files (a Kubernetes ConfigMap swaps the
 * `..data` symlink in the directory; the files themselves never change in place): after
 * an event the files are read again, and a changed, valid set replaces the old one
 * within ~100 ms; an invalid one is logged and counted, and the last good set stays.
 *
 * Shadow mode: the new set is evaluated and what it would refuse is logged and counted,
 * while the set enforced before (by the previous config generation) stays enforced; with
 * no previous set nothing is enforced. A config reload reuses a site's handle when its
 * policy block is unchanged, so its watcher and caches survive.
 */
import { watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { SitePolicyConfig } from '../../config/schema.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { DecisionCache } from './decide.js';
import { loadPolicySet, PolicyLoadError, type LoadedPolicySet } from './policy-set.js';

export interface ActiveSet {
  readonly set: LoadedPolicySet;
  readonly cache: DecisionCache;
}

/** After a file event, wait this long for the rest of the burst (editors write in steps). */
const SETTLE_MS = 100;

export class PolicyHandle {
  enforced: ActiveSet | null;
  shadow: ActiveSet | null;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly siteId: string,
    readonly key: string,
    readonly files: readonly string[],
    readonly cfg: SitePolicyConfig,
    inherited: ActiveSet | null,
    private readonly log: Logger | null,
    private readonly metrics: Metrics | null,
  ) {
    // Throws PolicyLoadError: the config generation is refused (fail closed).
    const first = this.activate(loadPolicySet(files, cfg));
    if (cfg.shadow) {
      this.shadow = first;
      this.enforced = inherited;
    } else {
      this.enforced = first;
      this.shadow = null;
    }
  }

  private activate(set: LoadedPolicySet): ActiveSet {
    return { set, cache: new DecisionCache(this.cfg.cache_entries) };
  }

  /** The set this handle's own files describe (shadow or enforced). */
  get own(): ActiveSet | null {
    return this.cfg.shadow ? this.shadow : this.enforced;
  }

  watch(): void {
    for (const dir of new Set(this.files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', (err) => this.log?.warn({ event: 'policy_watch_failed', site: this.siteId, dir, err: String(err) }, 'policy directory watch failed; reload the config to pick up policy changes'));
        this.watchers.push(w);
      } catch (err) {
        this.log?.warn({ event: 'policy_watch_failed', site: this.siteId, dir, err: String(err) }, 'cannot watch the policy directory; reload the config to pick up policy changes');
      }
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reloadFiles();
    }, SETTLE_MS);
    this.timer.unref();
  }

  /** Reads the files again; applies a changed valid set. Returns false when refused. */
  reloadFiles(): boolean {
    if (this.closed) return false;
    let set: LoadedPolicySet;
    try {
      set = loadPolicySet(this.files, this.cfg);
    } catch (err) {
      this.metrics?.policyReloads.labels(this.siteId, 'failure').inc();
      const file = err instanceof PolicyLoadError ? err.file : this.files.join(', ');
      this.log?.error({ event: 'policy_reload_failed', site: this.siteId, file, err: err instanceof Error ? err.message : String(err) }, 'policy reload refused; the last good policy set stays');
      return false;
    }
    if (set.digest === this.own?.set.digest) return true;
    const active = this.activate(set);
    if (this.cfg.shadow) this.shadow = active;
    else this.enforced = active;
    this.metrics?.policyReloads.labels(this.siteId, 'success').inc();
    this.log?.info({ event: 'policy_reloaded', site: this.siteId, shadow: this.cfg.shadow, policies: set.ids.length }, 'policy set reloaded');
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}

export class PolicyRegistry {
  private current = new Map<string, PolicyHandle>();
  private pending = new Map<string, PolicyHandle>();

  constructor(
    private readonly log: Logger | null,
    private readonly metrics: Metrics | null,
    private readonly watchFiles: boolean,
  ) {}

  /** The handle for a site of the generation being built; reused when its policy block is unchanged. */
  handleFor(siteId: string, cfg: SitePolicyConfig, dir: string): PolicyHandle {
    const files = cfg.files.map((f) => resolve(dir, f));
    const key = JSON.stringify([files, cfg]);
    const prev = this.current.get(siteId);
    if (prev !== undefined && prev.key === key) {
      this.pending.set(siteId, prev);
      return prev;
    }
    const h = new PolicyHandle(siteId, key, files, cfg, prev?.enforced ?? null, this.log, this.metrics);
    if (this.watchFiles) h.watch();
    this.pending.set(siteId, h);
    return h;
  }

  /** The generation built since the last commit is now serving: stop watching what it dropped. */
  commit(): void {
    for (const [id, h] of this.current) if (this.pending.get(id) !== h) h.close();
    this.current = this.pending;
    this.pending = new Map();
  }

  /** The generation was refused: drop the handles it created, keep the serving ones. */
  discard(): void {
    for (const [id, h] of this.pending) if (this.current.get(id) !== h) h.close();
    this.pending = new Map();
  }

  close(): void {
    for (const h of this.current.values()) h.close();
    this.discard();
    this.current = new Map();
  }
}
