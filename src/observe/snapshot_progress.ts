import { formatCount, formatDuration, formatRate, renderTable } from "./text_table.ts";
import { jsonLine, type LogEvent, rounded } from "./log_event.ts";
import type { LogFormat } from "./replication_log.ts";

export interface TableProgress {
  name: string;
  estimated: number;
  /** Rows in its stream: those of an earlier, interrupted run (resume) included. */
  rows: number;
  /** Rows already in the stream when this run started the table (resume); not in rates. */
  already?: number;
  startedAt: number | null;
  finishedAt: number | null;
  status: "waiting" | "running" | "done" | "skipped" | "failed";
  error?: string;
}

export interface ProgressOutput {
  isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** `json`: events (below) instead of the live table and the plain lines. */
  format?: LogFormat;
  /** Replication id, in every json event. */
  id?: string;
}

/** Rows this run copied (rates count these, not what an earlier run wrote). */
const copied = (t: TableProgress) => t.rows - (t.already ?? 0);
const copiedRows = (tables: readonly TableProgress[]) => tables.reduce((n, t) => n + copied(t), 0);

/** Elapsed seconds, rate, percent (at most 99 until done) and ETA of a table; NaN: unknown. */
function measure(t: TableProgress, now: number) {
  const secs = (now - (t.startedAt ?? now)) / 1000;
  const rate = secs > 0 ? copied(t) / secs : 0;
  const pct = t.estimated > 0 ? Math.min(99, (100 * t.rows) / t.estimated) : NaN;
  const eta = rate > 0 && t.estimated > t.rows ? (t.estimated - t.rows) / rate : NaN;
  return { secs, rate, pct, eta };
}

const isActive = (t: TableProgress) => t.status === "running" || t.status === "waiting";

/** Progress lines in a log (not a terminal), and json progress events: every 5 s. */
export const DEFAULT_LOG_INTERVAL_MS = 5000;

/** json: where a running table is; `percent` and `eta_s` are null without an estimate. */
export function progressEvent(t: TableProgress, now: number): LogEvent {
  const m = measure(t, now);
  return {
    level: "info",
    event: "progress",
    fields: {
      table: t.name,
      status: t.status,
      rows: t.rows,
      estimated_rows: t.estimated,
      percent: rounded(m.pct),
      rows_per_s: rounded(m.rate),
      eta_s: rounded(m.eta),
      elapsed_s: rounded(m.secs, 3),
    },
  };
}

/** json: the whole snapshot so far, after the `progress` events of one tick. */
export function progressTotalEvent(
  tables: readonly TableProgress[],
  startedAt: number,
  now: number,
): LogEvent {
  const rows = tables.reduce((n, t) => n + t.rows, 0);
  const secs = (now - startedAt) / 1000;
  return {
    level: "info",
    event: "progress_total",
    fields: {
      tables: tables.length,
      tables_done: tables.filter((t) => !isActive(t)).length,
      tables_running: tables.filter((t) => t.status === "running").length,
      rows,
      rows_per_s: rounded(secs > 0 ? copiedRows(tables) / secs : 0),
      elapsed_s: rounded(secs, 3),
    },
  };
}

/** A finished table's line: `table_done` (while running) or `summary` (at the end). */
function finishedEvent(event: string, t: TableProgress, now: number): LogEvent {
  const secs = ((t.finishedAt ?? now) - (t.startedAt ?? now)) / 1000;
  return {
    level: t.status === "done" ? "info" : "warn",
    event,
    fields: {
      ...(event === "summary" ? { phase: "snapshot" } : {}),
      table: t.name,
      status: t.status,
      rows: t.rows,
      elapsed_s: rounded(secs, 3),
      rows_per_s: rounded(copied(t) / secs),
      error: t.error,
    },
  };
}

export function tableDoneEvent(t: TableProgress, now: number): LogEvent {
  return finishedEvent("table_done", t, now);
}

/**
 * json: the end-of-snapshot summary as one `summary` object per table and a `summary_total`,
 * flat rather than one object with an array, so Loki/ELK index each table's numbers as
 * fields and `jq 'select(.event=="summary")'` yields a row per table.
 */
export function snapshotSummaryEvents(
  tables: readonly TableProgress[],
  now: number,
): LogEvent[] {
  const events = tables.map((t) => finishedEvent("summary", t, now));
  const rows = tables.reduce((n, t) => n + t.rows, 0);
  const secs = snapshotSeconds(tables, now);
  const count = (status: TableProgress["status"]) =>
    tables.filter((t) => t.status === status).length;
  events.push({
    level: "info",
    event: "summary_total",
    fields: {
      phase: "snapshot",
      tables: tables.length,
      done: count("done"),
      skipped: count("skipped"),
      failed: count("failed"),
      rows,
      elapsed_s: rounded(secs, 3),
      rows_per_s: rounded(copiedRows(tables) / secs),
    },
  });
  return events;
}

/**
 * Wall time of the snapshot itself: from the first table's start to the last table's end
 * (now, while one still runs). A `full` run prints its snapshot summary while realtime goes
 * on, and tables copied in parallel overlap, so neither the run's age nor a sum is right.
 */
export function snapshotSeconds(tables: readonly TableProgress[], now: number): number {
  let first = Infinity;
  let last = -Infinity;
  for (const t of tables) {
    if (t.startedAt === null) continue;
    first = Math.min(first, t.startedAt);
    last = Math.max(last, t.finishedAt ?? now);
  }
  return first === Infinity ? 0 : (last - first) / 1000;
}

/** Progress of one running table as a plain log line (no terminal needed). */
export function progressLine(t: TableProgress, now: number): string {
  const { rate, pct, eta } = measure(t, now);
  const of = t.estimated > 0 ? ` of ~${formatCount(t.estimated)}` : "";
  const percent = Number.isNaN(pct) ? "" : ` (${pct.toFixed(0)}%)`;
  return `snapshot: ${t.name}: ${formatCount(t.rows)}${of} rows${percent}, ${
    formatRate(rate)
  }, eta ${formatDuration(eta)}`;
}

/**
 * Per-table snapshot progress and the summary at the end. On a terminal a live table,
 * redrawn every `intervalMs`; elsewhere (a log file, `kubectl logs`, CI) plain lines every
 * `intervalMs`: the whole snapshot, then each running table with rows, rate and ETA, never
 * a terminal control code. With `format: json`, events every `intervalMs` wherever the
 * output goes (a redrawn table is no log).
 */
export class SnapshotProgress {
  readonly #tables = new Map<string, TableProgress>();
  readonly #json: boolean;
  readonly #live: boolean;
  readonly intervalMs: number;
  #startedAt = Date.now();
  #timer: ReturnType<typeof setInterval> | null = null;
  #drawnLines = 0;

  constructor(
    private readonly out: ProgressOutput,
    intervalMs?: number,
    private readonly options: ProgressOptions = {},
  ) {
    this.#json = options.format === "json";
    this.#live = out.isTTY === true && !this.#json;
    this.intervalMs = intervalMs ?? (this.#live ? 500 : DEFAULT_LOG_INTERVAL_MS);
  }

  add(name: string, estimated: number): void {
    this.#tables.set(name, {
      name,
      estimated,
      rows: 0,
      startedAt: null,
      finishedAt: null,
      status: "waiting",
    });
  }

  start(): void {
    this.#startedAt = Date.now();
    this.#timer = setInterval(() => this.#draw(), this.intervalMs);
    (this.#timer as unknown as { unref?: () => void }).unref?.();
  }

  tableStarted(name: string, alreadyWritten = 0): void {
    const t = this.#tables.get(name)!;
    t.status = "running";
    t.startedAt = Date.now();
    t.rows = alreadyWritten;
    t.already = alreadyWritten;
  }

  rowsWritten(name: string, n: number): void {
    this.#tables.get(name)!.rows += n;
  }

  tableFinished(name: string, status: "done" | "skipped" | "failed", error?: string): void {
    const t = this.#tables.get(name)!;
    t.status = status;
    t.finishedAt = Date.now();
    t.error = error;
    if (this.#json) this.#emit([tableDoneEvent(t, t.finishedAt)]);
  }

  get totalRows(): number {
    let n = 0;
    for (const t of this.#tables.values()) n += t.rows;
    return n;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#live) this.#clear();
  }

  /**
   * Final table: rows, time and rate per table, then the totals over the snapshot's own
   * time (json: summary events).
   */
  summary(): string {
    const now = Date.now();
    const tables = [...this.#tables.values()];
    if (this.#json) {
      const events = snapshotSummaryEvents(tables, now);
      return events.map((e) => jsonLine(e, this.options.id).trimEnd()).join("\n");
    }
    const rows = tables.map((t) => {
      const secs = ((t.finishedAt ?? now) - (t.startedAt ?? now)) / 1000;
      return [
        t.name,
        t.status,
        formatCount(t.rows),
        formatDuration(secs),
        formatRate(copied(t) / secs),
        t.error ?? "",
      ];
    });
    const secs = snapshotSeconds(tables, now);
    rows.push([
      "total",
      "",
      formatCount(this.totalRows),
      formatDuration(secs),
      formatRate(copiedRows(tables) / secs),
      "",
    ]);
    return renderTable(["table", "status", "rows", "time", "rate", "error"], rows);
  }

  #head(now: number): string {
    const done = [...this.#tables.values()].filter((t) => !isActive(t)).length;
    const secs = (now - this.#startedAt) / 1000;
    return `snapshot: ${done}/${this.#tables.size} tables done, ${
      formatCount(this.totalRows)
    } rows, ${formatRate(copiedRows([...this.#tables.values()]) / secs)}, ${
      formatDuration(secs)
    } elapsed`;
  }

  /** The live table of a terminal: the head line, then the tables not finished yet. */
  #liveLines(now: number): string[] {
    const rows = [...this.#tables.values()]
      .filter(isActive)
      .slice(0, 20)
      .map((t) => {
        const { rate, pct, eta } = measure(t, now);
        return [
          t.name,
          t.status,
          formatCount(t.rows),
          Number.isNaN(pct) ? "-" : `${pct.toFixed(0)}%`,
          formatRate(rate),
          formatDuration(eta),
        ];
      });
    const head = this.#head(now);
    return rows.length > 0
      ? [head, ...renderTable(["table", "status", "rows", "done", "rate", "eta"], rows).split("\n")]
      : [head];
  }

  #draw(): void {
    const now = Date.now();
    const tables = [...this.#tables.values()];
    if (this.#json) {
      this.#emit([
        ...tables.filter((t) => t.status === "running").map((t) => progressEvent(t, now)),
        progressTotalEvent(tables, this.#startedAt, now),
      ]);
      return;
    }
    if (this.#live) {
      const lines = this.#liveLines(now);
      this.#clear();
      this.out.write(lines.join("\n") + "\n");
      this.#drawnLines = lines.length;
      return;
    }
    const running = tables.filter((t) => t.status === "running").map((t) => progressLine(t, now));
    this.out.write([this.#head(now), ...running].join("\n") + "\n");
  }

  #emit(events: LogEvent[]): void {
    this.out.write(events.map((e) => jsonLine(e, this.options.id)).join(""));
  }

  #clear(): void {
    if (this.#drawnLines > 0) this.out.write(`\x1b[${this.#drawnLines}A\x1b[J`);
    this.#drawnLines = 0;
  }
}
