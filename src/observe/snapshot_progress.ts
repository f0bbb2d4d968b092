import { formatCount, formatDuration, formatRate, renderTable } from "./text_table.ts";
import { jsonLine, type LogEvent, rounded } from "./log_event.ts";
import type { LogFormat } from "./replication_log.ts";

export interface TableProgress {
  name: string;
  estimated: number;
  rows: number;
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

/** Elapsed seconds, rate, percent (at most 99 until done) and ETA of a table; NaN: unknown. */
function measure(t: TableProgress, now: number) {
  const secs = (now - (t.startedAt ?? now)) / 1000;
  const rate = secs > 0 ? t.rows / secs : 0;
  const pct = t.estimated > 0 ? Math.min(99, (100 * t.rows) / t.estimated) : NaN;
  const eta = rate > 0 && t.estimated > t.rows ? (t.estimated - t.rows) / rate : NaN;
  return { secs, rate, pct, eta };
}

const isActive = (t: TableProgress) => t.status === "running" || t.status === "waiting";

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
      rows_per_s: rounded(secs > 0 ? rows / secs : 0),
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
      rows_per_s: rounded(t.rows / secs),
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
  startedAt: number,
  now: number,
): LogEvent[] {
  const events = tables.map((t) => finishedEvent("summary", t, now));
  const rows = tables.reduce((n, t) => n + t.rows, 0);
  const secs = (now - startedAt) / 1000;
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
      rows_per_s: rounded(rows / secs),
    },
  });
  return events;
}

/**
 * Per-table snapshot progress: a live table on a terminal, a plain line every
 * `intervalMs` otherwise (logs, CI), and a summary at the end; with `format: json`, events
 * every `intervalMs` wherever the output goes (a redrawn table is no log).
 */
export class SnapshotProgress {
  readonly #tables = new Map<string, TableProgress>();
  readonly #startedAt = Date.now();
  readonly #json: boolean;
  readonly intervalMs: number;
  #timer: ReturnType<typeof setInterval> | null = null;
  #drawnLines = 0;

  constructor(
    private readonly out: ProgressOutput,
    intervalMs?: number,
    private readonly options: ProgressOptions = {},
  ) {
    this.#json = options.format === "json";
    this.intervalMs = intervalMs ?? (out.isTTY && !this.#json ? 500 : 5000);
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
    this.#timer = setInterval(() => this.#draw(), this.intervalMs);
    (this.#timer as unknown as { unref?: () => void }).unref?.();
  }

  tableStarted(name: string, alreadyWritten = 0): void {
    const t = this.#tables.get(name)!;
    t.status = "running";
    t.startedAt = Date.now();
    t.rows = alreadyWritten;
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
    if (this.out.isTTY) this.#clear();
  }

  /** Final table: rows, time and rate per table, then the totals (json: summary events). */
  summary(): string {
    const now = Date.now();
    if (this.#json) {
      const events = snapshotSummaryEvents([...this.#tables.values()], this.#startedAt, now);
      return events.map((e) => jsonLine(e, this.options.id).trimEnd()).join("\n");
    }
    const rows = [...this.#tables.values()].map((t) => {
      const secs = ((t.finishedAt ?? now) - (t.startedAt ?? now)) / 1000;
      return [
        t.name,
        t.status,
        formatCount(t.rows),
        formatDuration(secs),
        formatRate(t.rows / secs),
        t.error ?? "",
      ];
    });
    const secs = (now - this.#startedAt) / 1000;
    rows.push([
      "total",
      "",
      formatCount(this.totalRows),
      formatDuration(secs),
      formatRate(this.totalRows / secs),
      "",
    ]);
    return renderTable(["table", "status", "rows", "time", "rate", "error"], rows);
  }

  #lines(): string[] {
    const now = Date.now();
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
    const done = [...this.#tables.values()].filter((t) => !isActive(t)).length;
    const secs = (now - this.#startedAt) / 1000;
    const head = `snapshot: ${done}/${this.#tables.size} tables done, ${
      formatCount(this.totalRows)
    } rows, ${formatRate(this.totalRows / secs)}, ${formatDuration(secs)} elapsed`;
    return rows.length > 0
      ? [head, ...renderTable(["table", "status", "rows", "done", "rate", "eta"], rows).split("\n")]
      : [head];
  }

  #draw(): void {
    if (this.#json) {
      const now = Date.now();
      const tables = [...this.#tables.values()];
      this.#emit([
        ...tables.filter((t) => t.status === "running").map((t) => progressEvent(t, now)),
        progressTotalEvent(tables, this.#startedAt, now),
      ]);
      return;
    }
    const lines = this.#lines();
    if (this.out.isTTY) {
      this.#clear();
      this.out.write(lines.join("\n") + "\n");
      this.#drawnLines = lines.length;
    } else {
      this.out.write(lines[0] + "\n");
    }
  }

  #emit(events: LogEvent[]): void {
    this.out.write(events.map((e) => jsonLine(e, this.options.id)).join(""));
  }

  #clear(): void {
    if (this.#drawnLines > 0) this.out.write(`\x1b[${this.#drawnLines}A\x1b[J`);
    this.#drawnLines = 0;
  }
}
