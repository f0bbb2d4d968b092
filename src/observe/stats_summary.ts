/**
 * Per-table statistics summary (issue 8): table, snapshot rows, realtime changes with their
 * operations, and the rate since the previous summary; written to trace.log every
 * `--stats-interval` seconds and once at exit.
 */
import type { ReplicantMetrics, TableStats } from "./replicant_metrics.ts";

export interface StatsLog {
  info(message: string): void;
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

export class StatsReporter {
  #timer: ReturnType<typeof setInterval> | null = null;
  #previous = new Map<string, number>();
  #at = Date.now();

  constructor(
    private readonly metrics: ReplicantMetrics,
    private readonly log: StatsLog,
    private readonly intervalSeconds: number,
  ) {}

  start(): void {
    if (this.intervalSeconds <= 0) return;
    this.#timer = setInterval(() => this.report(false), this.intervalSeconds * 1000);
    (this.#timer as unknown as { unref?: () => void }).unref?.();
  }

  report(final: boolean): void {
    const now = Date.now();
    const stats = this.metrics.tableStats();
    for (const line of formatStats(stats, this.#previous, (now - this.#at) / 1000, final)) {
      this.log.info(line);
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
