/**
 * Per-table statistics summary: table, snapshot rows, realtime changes with their
 * operations, and the rate since the previous summary; written to trace.log every
 * `--stats-interval` seconds and once at exit. With `--log-format json` they are `stats`
 * events, written to stderr as well: a log collector reading the process output gets them
 * without a file on disk to tail.
 */
import type { ReplicantMetrics, TableStats } from "./replicant_metrics.ts";
import { type LogEvent, rounded } from "./log_event.ts";
import type { LogFormat } from "./replication_log.ts";

export interface StatsLog {
  info(message: string): void;
  event(e: LogEvent): void;
}

/** One line per table; `previous` (counts at the last summary) gives the rate. */
export function formatStats(
  stats: TableStats[],
  previous: ReadonlyMap<string, number>,
  seconds: number,
  final: boolean,
): string[] {
  const lines: string[] = [];
  const total = stats.reduce((n, t) => n + t.snapshotRows + t.changes, 0);
  lines.push(
    `statistics${final ? " (final)" : ""}: ${stats.length} table(s), ${total} rows/changes`,
  );
  for (const t of stats) {
    const now = t.snapshotRows + t.changes;
    const before = previous.get(t.table) ?? 0;
    const rate = seconds > 0 ? (now - before) / seconds : 0;
    const ops = Object.entries(t.ops).map(([op, n]) => `${op}=${n}`).join(" ");
    lines.push(
      `statistics: table ${t.table}: snapshot rows ${t.snapshotRows}, changes ${t.changes}` +
        (ops ? ` (${ops})` : "") + `, ${rate.toFixed(1)}/s`,
    );
  }
  return lines;
}

/**
 * `--log-format json`: one `stats` event per table (its own counts, so a pipeline can graph
 * a table without splitting prose), then one `stats_total`. `rows_per_s` is snapshot rows
 * plus changes per second since the previous summary.
 */
export function statsEvents(
  stats: TableStats[],
  previous: ReadonlyMap<string, number>,
  seconds: number,
  final: boolean,
): LogEvent[] {
  const rate = (now: number, before: number) => seconds > 0 ? rounded((now - before) / seconds) : 0;
  const events: LogEvent[] = stats.map((t) => ({
    level: "info",
    event: "stats",
    fields: {
      table: t.table,
      final,
      snapshot_rows: t.snapshotRows,
      changes: t.changes,
      ops: t.ops,
      rows_per_s: rate(t.snapshotRows + t.changes, previous.get(t.table) ?? 0),
    },
  }));
  const sum = (f: (t: TableStats) => number) => stats.reduce((n, t) => n + f(t), 0);
  const before = [...previous.values()].reduce((n, v) => n + v, 0);
  events.push({
    level: "info",
    event: "stats_total",
    fields: {
      final,
      tables: stats.length,
      snapshot_rows: sum((t) => t.snapshotRows),
      changes: sum((t) => t.changes),
      rows_per_s: rate(sum((t) => t.snapshotRows + t.changes), before),
      interval_s: rounded(seconds, 3),
    },
  });
  return events;
}

export class StatsReporter {
  #timer: ReturnType<typeof setInterval> | null = null;
  #previous = new Map<string, number>();
  #at = Date.now();

  constructor(
    private readonly metrics: ReplicantMetrics,
    private readonly log: StatsLog,
    private readonly intervalSeconds: number,
    private readonly format: LogFormat = "text",
    /** json: where the events go besides the log (stderr). */
    private readonly emit: (e: LogEvent) => void = () => {},
  ) {}

  start(): void {
    if (this.intervalSeconds <= 0) return;
    this.#timer = setInterval(() => this.report(false), this.intervalSeconds * 1000);
    (this.#timer as unknown as { unref?: () => void }).unref?.();
  }

  report(final: boolean): void {
    const now = Date.now();
    const stats = this.metrics.tableStats();
    const seconds = (now - this.#at) / 1000;
    if (this.format === "json") {
      for (const e of statsEvents(stats, this.#previous, seconds, final)) {
        this.log.event(e);
        this.emit(e);
      }
    } else {
      for (const line of formatStats(stats, this.#previous, seconds, final)) this.log.info(line);
    }
    this.#previous = new Map(stats.map((t) => [t.table, t.snapshotRows + t.changes]));
    this.#at = now;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.report(true);
  }
}
