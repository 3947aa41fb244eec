/**
 * The audit service of one gateway: opens the store and the writer, and connects them to
 * the pipeline through the general hooks of GatewayContext:
 *
 * - `observers`: every finished exchange becomes a record (async mode; in sync mode only
 *   those not already recorded at decision time, e.g. a client that went away);
 * - `beforeRespond` (sync mode): the decided exchange's record is made durable before
 *   the first response byte is written;
 * - `onConnectionDrop` and IP-filter refusals: aggregated per client IP and interval;
 * - the gate stage refuses new traffic (503 audit_unavailable) when records can no
 *   longer be kept (store down and spool full), unless `on_failure: allow`.
 */
import type { KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { AdminRoute } from '../admin/server.js';
import { AdminError } from '../admin/server.js';
import type { LoadedConfig } from '../config/load.js';
import type { AuditConfig, Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { GatewayContext } from '../pipeline/context.js';
import type { Exchange } from '../pipeline/exchange.js';
import type { ExchangeObserver } from '../pipeline/observer.js';
import { Refusal } from '../pipeline/refusal.js';
import type { Stage } from '../pipeline/stage.js';
import { createPostgresClient, stateDir } from '../stores/postgres-client.js';
import { loadSigner, type CheckpointSigner } from './checkpoint.js';
import { DropAggregator } from './drops.js';
import { exchangeBody } from './exchange-record.js';
import { loadKeyring, type Keyring } from './keyring.js';
import type { AuditBody, Decision } from './record.js';
import { createPostgresAuditStore } from './store/postgres.js';
import { createSqliteAuditStore } from './store/sqlite.js';
import type { AuditStore } from './store/types.js';
import { verifyStore } from './sources.js';
import { AuditWriter, type WriterMetrics } from './writer.js';
import { Archiver } from './archive/archiver.js';
import { archiverMetrics, lockMode, openArchiveTarget } from './archive/open.js';
import type { ArchiveTarget } from './archive/target.js';

const AUDIT_UNAVAILABLE = new Refusal('audit_unavailable', 'audit');

/**
 * The gate stage, created with the runtime before the service has opened (the gateway
 * starts listening only after it has); `service` is set once it is.
 */
export class AuditGate implements Stage {
  readonly id = 'audit';
  service: AuditService | null = null;
  run(): Refusal | undefined {
    const s = this.service;
    if (s === null || s.accepting) return undefined;
    s.metrics.auditRefusals.inc();
    return AUDIT_UNAVAILABLE;
  }
}

/**
 * The configured store. `readOnly` (verify, export): SQLite opens the file read-only and
 * only if it exists; PostgreSQL never runs DDL anyway (`init` only checks the schema).
 */
export function openAuditStore(config: Config, configDir: string, opts: { readOnly?: boolean } = {}): AuditStore {
  if (config.audit.store === 'postgres') {
    const pg = config.state.postgres;
    if (!pg) throw new Error('audit.store is postgres but state.postgres is missing');
    return createPostgresAuditStore(createPostgresClient(pg, configDir, { max: 4, ca: config.ca }), pg.schema);
  }
  return createSqliteAuditStore(join(stateDir(config.state.dir, configDir), 'audit.sqlite'), { readOnly: opts.readOnly === true });
}

export function loadAuditKeys(a: AuditConfig, dir: string): { keyring: Keyring; signer: CheckpointSigner | null } {
  return {
    keyring: loadKeyring(a.keys, dir),
    signer: a.checkpoint_key_file !== undefined ? loadSigner(resolve(dir, a.checkpoint_key_file)) : null,
  };
}

export class AuditService {
  readonly writer: AuditWriter;
  readonly store: AuditStore;
  readonly metrics: Metrics;
  readonly routes: AdminRoute[];
  private readonly log: Logger;
  private readonly drops = new DropAggregator();
  private readonly instance: string;
  private config: AuditConfig;
  private keyring: Keyring;
  private publicKey: KeyObject | null;
  private readonly dropTimer: NodeJS.Timeout;
  /** Sync mode: exchanges already recorded at decision time. */
  private readonly recorded = new WeakSet<Exchange>();
  /** `audit.archive`: archives this instance's stream in the background. */
  archiver: Archiver | null = null;
  private archiveTarget: ArchiveTarget | null = null;

  private constructor(config: AuditConfig, store: AuditStore, writer: AuditWriter, keyring: Keyring, signer: CheckpointSigner | null, metrics: Metrics, log: Logger) {
    this.config = config;
    this.store = store;
    this.writer = writer;
    this.keyring = keyring;
    this.publicKey = signer?.publicKey ?? null;
    this.metrics = metrics;
    this.log = log;
    this.instance = hostname();
    this.dropTimer = setInterval(() => this.flushDrops(), config.drop_interval);
    this.dropTimer.unref();
    this.routes = this.adminRoutes();
  }

  static async open(loaded: LoadedConfig, ctx: GatewayContext): Promise<AuditService> {
    const a = loaded.config.audit;
    const { keyring, signer } = loadAuditKeys(a, loaded.dir);
    const store = openAuditStore(loaded.config, loaded.dir);
    const m = ctx.metrics;
    const wm: WriterMetrics = {
      written: (n, s) => {
        m.auditRecords.inc(n);
        m.auditWriteSeconds.observe(s);
      },
      spoolBytes: (n) => m.auditSpoolBytes.set(n),
      checkpoint: (t) => m.auditLastCheckpoint.set(t),
      writeFailed: () => m.auditStoreErrors.inc(),
    };
    let writer: AuditWriter;
    try {
      writer = await AuditWriter.open({
        store,
        keyring,
        signer,
        stateDir: stateDir(loaded.config.state.dir, loaded.dir),
        stream: a.stream,
        instance: hostname(),
        mode: a.mode,
        flushIntervalMs: a.flush_interval,
        batchMax: a.batch_max,
        checkpointRecords: a.checkpoint_records,
        checkpointIntervalMs: a.checkpoint_interval,
        spoolLimitBytes: a.spool_limit,
        queueLimit: a.queue_limit,
        metrics: wm,
        log: ctx.log,
        health: ctx.dependencies.dependency('audit_store', { describe: 'the audit store' }),
      });
    } catch (err) {
      await store.close().catch(() => undefined);
      // Never a new genesis: without the stored head the stream cannot continue.
      throw new Error(`audit: cannot open stream (store ${a.store}): ${(err as Error).message}`, { cause: err });
    }
    const svc = new AuditService(a, store, writer, keyring, signer, m, ctx.log);
    if (a.archive !== undefined && signer !== null) {
      // A target readable without credentials refuses the start; one that is down does not.
      const target = await openArchiveTarget(a.archive, loaded.dir);
      try {
        svc.archiver = await Archiver.open({
          store,
          target,
          stream: writer.stream,
          keyring,
          signer,
          segmentRecords: a.archive.segment_records,
          intervalMs: a.archive.interval,
          keepLocalMs: a.archive.keep_local ?? null,
          retentionMs: a.archive.retention,
          objectLock: a.archive.object_lock,
          lockMode: lockMode(a.archive),
          retryMaxMs: a.archive.retry_max,
          headSeq: () => writer.status().head_seq,
          metrics: archiverMetrics(m, target.location),
          log: ctx.log,
        });
      } catch (err) {
        await target.close().catch(() => undefined);
        await writer.close().catch(() => undefined);
        await store.close().catch(() => undefined);
        throw new Error(`audit archive: ${(err as Error).message}`, { cause: err });
      }
      svc.archiveTarget = target;
      svc.archiver.start(1000);
    }
    ctx.observers.push(svc.observer());
    ctx.onConnectionDrop = (ip, rule) => svc.drops.add(ip, null, 'ip_filter', rule, 'ip_denied', 'dropped', 0);
    if (a.mode === 'sync') ctx.beforeRespond = (ex) => svc.beforeRespond(ex);
    ctx.log.info({ event: 'audit_started', stream: writer.stream, store: a.store, mode: a.mode }, 'audit trail started');
    return svc;
  }

  /**
   * A record that is not an HTTP exchange of a site (ACME issuance and revocation,
   * docs/acme.md#audit): the caller fills the fields; the instance is this one's.
   */
  recordEvent(body: AuditBody): Promise<void> {
    body.instance = this.instance;
    return this.writer.append(body);
  }

  /** Whether new traffic is admitted: records can be kept, or the operator chose `on_failure: allow`. */
  get accepting(): boolean {
    return this.config.on_failure === 'allow' || this.writer.available;
  }

  private observer(): ExchangeObserver {
    return {
      id: 'audit',
      finished: (ex) => {
        const r = ex.refusal;
        if (r !== null && (r.drop || r.code === 'audit_unavailable')) {
          this.drops.add(ex.clientIp, ex.site?.id ?? null, r.stage, r.rule ?? null, r.code, (r.drop ? 'dropped' : 'refused') as Decision, ex.status);
          return;
        }
        if (this.recorded.has(ex)) {
          // Sync mode recorded the decision before the answer; an LLM call's usage is known
          // only now, so it gets its final record too (docs/audit.md#the-llm-member).
          if (ex.llm !== null) void this.writer.append(exchangeBody(ex, this.instance, true));
          return;
        }
        const full = this.writer.unavailable;
        if (full !== null && this.config.on_failure === 'allow') {
          this.drops.add(ex.clientIp, ex.site?.id ?? null, 'audit', full, 'audit_unavailable', r === null ? 'allowed' : 'refused', ex.status);
          return;
        }
        void this.writer.append(exchangeBody(ex, this.instance, true));
      },
    };
  }

  private beforeRespond(ex: Exchange): Promise<void> {
    if (!this.writer.available) {
      if (this.config.on_failure === 'allow') return Promise.resolve();
      return Promise.reject(new Error(`audit records cannot be kept (${this.writer.unavailable ?? 'unavailable'})`));
    }
    this.recorded.add(ex);
    return this.writer.append(exchangeBody(ex, this.instance, false));
  }

  private flushDrops(): void {
    for (const b of this.drops.drain(this.instance)) void this.writer.append(b);
  }

  /** Reload: a changed keyring applies at once (rotation); other audit settings need a restart. */
  reload(loaded: LoadedConfig): void {
    const a = loaded.config.audit;
    const { keys: _k, ...rest } = a;
    const { keys: _o, ...old } = this.config;
    if (JSON.stringify(rest) !== JSON.stringify(old)) this.log.warn({ event: 'audit_restart_required' }, 'audit settings other than keys change only on restart');
    if (JSON.stringify(a.keys) !== JSON.stringify(this.config.keys)) {
      try {
        this.keyring = loadKeyring(a.keys, loaded.dir);
        this.writer.setKeyring(this.keyring);
        this.log.info({ event: 'audit_keys_reloaded', active: this.keyring.activeId }, 'audit keyring reloaded');
      } catch (err) {
        this.log.error({ event: 'audit_keys_reload_failed', err: (err as Error).message }, 'audit keyring not reloaded; the previous keys stay in use');
      }
    }
    this.config = a;
  }

  async close(): Promise<void> {
    clearInterval(this.dropTimer);
    this.flushDrops();
    // The archiver reads the store: it stops (its run in progress finishes) before the store closes.
    await this.archiver?.close();
    await this.archiveTarget?.close().catch(() => undefined);
    await this.writer.close();
    await this.store.close();
  }

  private adminRoutes(): AdminRoute[] {
    return [
      {
        method: 'GET',
        path: '/audit/status',
        auth: true,
        handle: async (r) => {
          r.send(200, { stream: this.writer.status(), streams: await this.store.streams(), store: this.store.kind, accepting: this.accepting, archive: this.archiver?.status() ?? null });
        },
      },
      {
        method: 'GET',
        path: '/audit/records',
        auth: true,
        handle: async (r) => {
          const p = r.url.searchParams;
          const time = (name: string): string | undefined => {
            const v = p.get(name);
            if (v === null) return undefined;
            const t = Date.parse(v);
            if (Number.isNaN(t)) throw new AdminError('bad_request', `${name} is not a time`);
            return new Date(t).toISOString();
          };
          const decision = p.get('decision');
          if (decision !== null && decision !== 'allowed' && decision !== 'refused' && decision !== 'dropped') throw new AdminError('bad_request', 'decision must be allowed, refused or dropped');
          const limit = p.get('limit') === null ? 100 : Number(p.get('limit'));
          if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AdminError('bad_request', 'limit must be 1..1000');
          const records = await this.store.query({
            from: time('from'),
            to: time('to'),
            subject: p.get('subject') ?? undefined,
            decision: decision ?? undefined,
            stream: p.get('stream') ?? undefined,
            limit,
          });
          r.send(200, { records });
        },
      },
      {
        method: 'POST',
        path: '/audit/verify',
        auth: true,
        handle: async (r) => {
          await this.writer.flush();
          const reports = await verifyStore(this.store, { keyring: this.keyring, publicKey: this.publicKey });
          for (const rep of reports) for (const pr of rep.problems) this.metrics.auditVerifyFailures.labels(pr.kind).inc();
          r.send(200, { ok: reports.every((x) => x.problems.length === 0), streams: reports });
        },
      },
    ];
  }
}
