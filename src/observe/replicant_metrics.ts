/**
 * The metrics of a run over a MetricsRegistry, with the few calls the pipelines
 * make. Counting is per batch: the hot path never allocates (children are looked up once
 * per table and cached on the table's schema object).
 *
 * There is no process-wide instance: each run builds its own (pipeline_state.ts), so two
 * replications in one process count apart and each metrics server serves its run's.
 */
import type { EntryField } from "../core/entry_field.ts";
import process from "node:process";
import type { Op } from "../core/change_event.ts";
import { qualifiedName, type TableSchema } from "../core/table_schema.ts";
import { HealthState } from "./health.ts";
import {
  type Counter,
  type CounterChild,
  exponentialBuckets,
  type Gauge,
  type Histogram,
  type HistogramChild,
  MetricsRegistry,
} from "./metrics.ts";

export type Phase = "snapshot" | "realtime";

/** Names of the change operations in labels. */
export const OP_NAMES: Record<Op, string> = {
  r: "read",
  c: "insert",
  u: "update",
  d: "delete",
  t: "truncate",
};
const OPS: Op[] = ["r", "c", "u", "d", "t"];

interface TableChildren {
  name: string;
  ops: Record<Op, CounterChild>;
  snapshotRows: CounterChild;
}

/** What the realtime pipeline accepted in one batch (its queued items). */
export interface AcceptedChange {
  entries: EntryField[][];
  op?: Op;
  table?: TableSchema;
  tsMs?: number;
}

export interface TableStats {
  table: string;
  snapshotRows: number;
  ops: Record<string, number>;
  changes: number;
}

export class ReplicantMetrics {
  readonly registry: MetricsRegistry = new MetricsRegistry();
  readonly health: HealthState;
  readonly #byName = new Map<string, TableChildren>();
  readonly #bySchema = new WeakMap<TableSchema, TableChildren>();
  /** Source position lag in bytes, when the connector can tell (PostgreSQL). */
  lagBytes: (() => number) | null = null;
  /** Oldest commit time (ms) of a change seen but not yet in Redis; null when none. */
  oldestPendingMs: (() => number | null) | null = null;
  #lastCommitMs = 0;

  readonly snapshotRows: Counter = this.registry.counter(
    "replicant_snapshot_rows_total",
    "Snapshot rows written to Redis, per table.",
    ["table"],
  );
  readonly changes: Counter = this.registry.counter(
    "replicant_realtime_changes_total",
    "Realtime changes written to Redis (entries without tombstones), per table and operation.",
    ["table", "op"],
  );
  readonly entries: Counter = this.registry.counter(
    "replicant_stream_entries_total",
    "Entries accepted by XADD (tombstones included), per phase.",
    ["phase"],
  );
  readonly batches: Counter = this.registry.counter(
    "replicant_batches_total",
    "Pipelined XADD batches accepted by Redis.",
    ["phase"],
  );
  readonly retries: Counter = this.registry.counter(
    "replicant_batch_retries_total",
    "Batches tried again after a failure.",
    ["phase"],
  );
  readonly undos: Counter = this.registry.counter(
    "replicant_undone_entries_total",
    "Entries of failed realtime batches deleted again (undo).",
  );
  readonly skipped: Counter = this.registry.counter(
    "replicant_skipped_tables_total",
    "Tables skipped after failures.",
    ["phase"],
  );
  readonly indoubt: Gauge = this.registry.gauge(
    "replicant_indoubt_entries",
    "Entries written to the in-doubt file by this run.",
  );
  readonly lagSecondsGauge: Gauge = this.registry.gauge(
    "replicant_source_lag_seconds",
    "Seconds since the commit of the oldest change seen but not yet in Redis (0 when caught up).",
  );
  readonly lagBytesGauge: Gauge = this.registry.gauge(
    "replicant_source_lag_bytes",
    "Source log bytes not yet confirmed (PostgreSQL: current WAL LSN - slot confirmed_flush_lsn).",
  );
  readonly lastCommitGauge: Gauge = this.registry.gauge(
    "replicant_last_commit_timestamp_seconds",
    "Source commit time of the newest change written to Redis.",
  );
  readonly commitToXadd: Histogram = this.registry.histogram(
    "replicant_commit_to_xadd_seconds",
    "Time from the source commit of a batch's oldest change to Redis accepting the batch.",
    [],
    exponentialBuckets(0.001, 2, 17),
  );
  readonly roundTrip: Histogram = this.registry.histogram(
    "replicant_redis_roundtrip_seconds",
    "Round trip of one pipelined XADD batch.",
    ["phase"],
    exponentialBuckets(0.0001, 2, 17),
  );
  readonly healthGauge: Gauge = this.registry.gauge(
    "replicant_health_status",
    "1 for the current /health status, 0 for the others.",
    ["status"],
  );
  readonly retentionTrimmed: Counter = this.registry.counter(
    "replicant_retention_trimmed_entries_total",
    "Entries retention removed from a stream (acknowledged by every consumer group, or over the cap).",
    ["stream"],
  );
  readonly retentionUnread: Counter = this.registry.counter(
    "replicant_retention_unread_trimmed_entries_total",
    "Entries the retention hard cap (max-length) removed before every consumer group acknowledged them.",
    ["stream"],
  );
  readonly rss: Gauge = this.registry.gauge(
    "process_resident_memory_bytes",
    "Resident set size of the process in bytes.",
  );

  readonly #commitToXadd: HistogramChild = this.commitToXadd.labels();
  readonly #roundTrip: Record<Phase, HistogramChild> = {
    snapshot: this.roundTrip.labels("snapshot"),
    realtime: this.roundTrip.labels("realtime"),
  };
  readonly #entries: Record<Phase, CounterChild> = {
    snapshot: this.entries.labels("snapshot"),
    realtime: this.entries.labels("realtime"),
  };
  readonly #batches: Record<Phase, CounterChild> = {
    snapshot: this.batches.labels("snapshot"),
    realtime: this.batches.labels("realtime"),
  };

  constructor(lagThresholdSeconds = 60) {
    this.health = new HealthState(lagThresholdSeconds, () => this.lagSeconds());
    this.rss.labels().collect = () => process.memoryUsage.rss();
    this.lagSecondsGauge.labels().collect = () => this.lagSeconds();
    this.lagBytesGauge.labels().collect = () => this.lagBytes?.() ?? 0;
    this.lastCommitGauge.labels().collect = () => this.#lastCommitMs / 1000;
    this.indoubt.labels();
    this.undos.labels();
    for (const s of ["ready", "lagging", "failed"] as const) {
      this.healthGauge.labels(s).collect = () => this.health.report().status === s ? 1 : 0;
    }
  }

  lagSeconds(nowMs: number = Date.now()): number {
    const oldest = this.oldestPendingMs?.() ?? null;
    return oldest === null ? 0 : Math.max(0, (nowMs - oldest) / 1000);
  }

  #table(name: string): TableChildren {
    let t = this.#byName.get(name);
    if (!t) {
      const ops = {} as Record<Op, CounterChild>;
      for (const op of OPS) if (op !== "r") ops[op] = this.changes.labels(name, OP_NAMES[op]);
      t = { name, ops, snapshotRows: this.snapshotRows.labels(name) };
      this.#byName.set(name, t);
    }
    return t;
  }

  #ofSchema(schema: TableSchema): TableChildren {
    let t = this.#bySchema.get(schema);
    if (!t) {
      t = this.#table(qualifiedName(schema.id));
      this.#bySchema.set(schema, t);
    }
    return t;
  }

  /** A snapshot batch of `rows` entries of `table` (qualified name) was accepted. */
  snapshotBatch(table: string, rows: number, roundTripMs: number): void {
    this.#table(table).snapshotRows.inc(rows);
    this.#entries.snapshot.inc(rows);
    this.#batches.snapshot.inc();
    if (roundTripMs > 0) this.#roundTrip.snapshot.observe(roundTripMs / 1000);
    this.health.redisOk();
  }

  /** A realtime batch was accepted by Redis: counts per table and op, latency once. */
  realtimeBatch(batch: readonly AcceptedChange[], nowMs: number = Date.now()): void {
    if (batch.length === 0) return;
    let entries = 0;
    let prev: TableSchema | undefined = undefined;
    let t: TableChildren | null = null;
    for (let i = 0; i < batch.length; i++) {
      const q = batch[i];
      entries += q.entries.length;
      if (q.table === undefined || q.op === undefined) continue;
      if (q.table !== prev) {
        prev = q.table;
        t = this.#ofSchema(q.table);
      }
      t!.ops[q.op]?.inc();
    }
    this.#entries.realtime.inc(entries);
    this.#batches.realtime.inc();
    const first = batch[0].tsMs;
    if (first !== undefined && first > 0) {
      this.#commitToXadd.observe(Math.max(0, nowMs - first) / 1000);
    }
    const last = batch[batch.length - 1].tsMs;
    if (last !== undefined && last > this.#lastCommitMs) this.#lastCommitMs = last;
    this.health.redisOk();
  }

  /** Round trip of one realtime XADD batch attempt (accepted or not). */
  realtimeRoundTrip(ms: number): void {
    this.#roundTrip.realtime.observe(ms / 1000);
  }

  redisFailed(err: unknown): void {
    this.health.redisFailed(Date.now(), (err as Error)?.message ?? String(err));
  }

  retry(phase: Phase): void {
    this.retries.labels(phase).inc();
  }

  undone(n: number): void {
    this.undos.labels().inc(n);
  }

  skippedTable(phase: Phase): void {
    this.skipped.labels(phase).inc();
  }

  inDoubt(n: number): void {
    this.indoubt.labels().inc(n);
  }

  /** Retention removed `removed` entries of `stream`, `unread` of them unacknowledged. */
  retention(stream: string, removed: number, unread: number): void {
    this.retentionTrimmed.labels(stream).inc(removed);
    // Present (at 0) once the stream is trimmed, so an alert can watch it from the start.
    this.retentionUnread.labels(stream).inc(unread);
  }

  /** Per table counts so far, sorted by table name (for the statistics summary). */
  tableStats(): TableStats[] {
    const out: TableStats[] = [];
    for (const t of this.#byName.values()) {
      const ops: Record<string, number> = {};
      let changes = 0;
      for (const op of OPS) {
        const c = t.ops[op];
        if (c && c.value > 0) {
          ops[OP_NAMES[op]] = c.value;
          changes += c.value;
        }
      }
      out.push({ table: t.name, snapshotRows: t.snapshotRows.value, ops, changes });
    }
    return out.sort((a, b) => a.table < b.table ? -1 : a.table > b.table ? 1 : 0);
  }

  render(): string {
    return this.registry.render();
  }
}
