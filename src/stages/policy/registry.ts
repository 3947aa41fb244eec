/**
 * Policy sets per site, kept across config generations, and their hot reload.
 *
 * A handle holds the two sets a site's config names: `files`, the set it enforces, and
 * `shadow_files`, the set it only evaluates (what the shadow set would refuse is logged
 * and counted, it never refuses). Both are in the config, so a restart loads exactly what
 * ran before it (Envoy RBAC's `rules` + `shadow_rules`); nothing is inherited from a
 * previous generation. Each loaded set has its own decision cache, so swapping a set is
 * the cache invalidation. The handle watches the directories of its files (a Kubernetes
 * ConfigMap swaps the `..data` symlink in the directory; the files themselves never
 * change in place): after an event the files are read again, and a changed, valid set
 * replaces the old one within ~100 ms; an invalid one is logged and counted, and the last
 * good set stays. A config reload reuses a site's handle when its policy block is
 * unchanged, so its watchers and caches survive.
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

/** The absolute files of a site's two sets (an empty list: that set is absent). */
export interface PolicyPaths {
  readonly enforced: readonly string[];
  readonly shadow: readonly string[];
}

export function policyPaths(cfg: SitePolicyConfig, dir: string): PolicyPaths {
  return { enforced: (cfg.files ?? []).map((f) => resolve(dir, f)), shadow: (cfg.shadow_files ?? []).map((f) => resolve(dir, f)) };
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
    readonly paths: PolicyPaths,
    readonly cfg: SitePolicyConfig,
    private readonly log: Logger | null,
    private readonly metrics: Metrics | null,
  ) {
    // Throws PolicyLoadError: the config generation is refused (fail closed).
    this.enforced = paths.enforced.length > 0 ? this.activate(loadPolicySet(paths.enforced, cfg)) : null;
    this.shadow = paths.shadow.length > 0 ? this.activate(loadPolicySet(paths.shadow, cfg)) : null;
  }

  private activate(set: LoadedPolicySet): ActiveSet {
    return { set, cache: new DecisionCache(this.cfg.cache_entries) };
  }

  watch(): void {
    for (const dir of new Set([...this.paths.enforced, ...this.paths.shadow].map((f) => dirname(f)))) {
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

  /** Reads both sets' files again; applies each changed valid set. Returns false when one was refused (its last good set stays). */
  reloadFiles(): boolean {
    if (this.closed) return false;
    const e = this.reloadSet(this.paths.enforced, this.enforced, false);
    const s = this.reloadSet(this.paths.shadow, this.shadow, true);
    if (e.next !== null) this.enforced = e.next;
    if (s.next !== null) this.shadow = s.next;
    return e.ok && s.ok;
  }

  /** `next`: the new active set when `files` changed and load (null: keep the current one). */
  private reloadSet(files: readonly string[], current: ActiveSet | null, shadow: boolean): { ok: boolean; next: ActiveSet | null } {
    if (files.length === 0) return { ok: true, next: null };
    let set: LoadedPolicySet;
    try {
      set = loadPolicySet(files, this.cfg);
    } catch (err) {
      this.metrics?.policyReloads.labels(this.siteId, 'failure').inc();
      const file = err instanceof PolicyLoadError ? err.file : files.join(', ');
      this.log?.error({ event: 'policy_reload_failed', site: this.siteId, shadow, file, err: err instanceof Error ? err.message : String(err) }, 'policy reload refused; the last good policy set stays');
      return { ok: false, next: null };
    }
    if (set.digest === current?.set.digest) return { ok: true, next: null };
    this.metrics?.policyReloads.labels(this.siteId, 'success').inc();
    this.log?.info({ event: 'policy_reloaded', site: this.siteId, shadow, policies: set.ids.length }, 'policy set reloaded');
    return { ok: true, next: this.activate(set) };
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
    const paths = policyPaths(cfg, dir);
    const key = JSON.stringify([paths, cfg]);
    const prev = this.current.get(siteId);
    if (prev !== undefined && prev.key === key) {
      this.pending.set(siteId, prev);
      return prev;
    }
    const h = new PolicyHandle(siteId, key, paths, cfg, this.log, this.metrics);
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
