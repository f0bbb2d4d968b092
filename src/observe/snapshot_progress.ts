import { formatCount, formatDuration, formatRate, renderTable } from "./text_table.ts";

interface TableProgress {
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

/**
 * Per-table snapshot progress: a live table on a terminal, a plain line every
 * `intervalMs` otherwise (logs, CI), and a summary at the end.
 */
export class SnapshotProgress {
  readonly #tables = new Map<string, TableProgress>();
  readonly #startedAt = Date.now();
  #timer: ReturnType<typeof setInterval> | null = null;
  #drawnLines = 0;

  constructor(
    private readonly out: ProgressOutput,
    private readonly intervalMs = out.isTTY ? 500 : 5000,
  ) {}

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

  /** Final table: rows, time and rate per table, then the totals. */
  summary(): string {
    const now = Date.now();
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
      .filter((t) => t.status === "running" || t.status === "waiting")
      .slice(0, 20)
      .map((t) => {
        const secs = (now - (t.startedAt ?? now)) / 1000;
        const rate = secs > 0 ? t.rows / secs : 0;
        const pct = t.estimated > 0 ? Math.min(99, (100 * t.rows) / t.estimated) : NaN;
        const eta = rate > 0 && t.estimated > t.rows ? (t.estimated - t.rows) / rate : NaN;
        return [
          t.name,
          t.status,
          formatCount(t.rows),
          Number.isNaN(pct) ? "-" : `${pct.toFixed(0)}%`,
          formatRate(rate),
          formatDuration(eta),
        ];
      });
    const done =
      [...this.#tables.values()].filter((t) => t.status !== "running" && t.status !== "waiting")
        .length;
    const secs = (now - this.#startedAt) / 1000;
    const head = `snapshot: ${done}/${this.#tables.size} tables done, ${
      formatCount(this.totalRows)
    } rows, ${formatRate(this.totalRows / secs)}, ${formatDuration(secs)} elapsed`;
    return rows.length > 0
      ? [head, ...renderTable(["table", "status", "rows", "done", "rate", "eta"], rows).split("\n")]
      : [head];
  }

  #draw(): void {
    const lines = this.#lines();
    if (this.out.isTTY) {
      this.#clear();
      this.out.write(lines.join("\n") + "\n");
      this.#drawnLines = lines.length;
    } else {
      this.out.write(lines[0] + "\n");
    }
  }

  #clear(): void {
    if (this.#drawnLines > 0) this.out.write(`\x1b[${this.#drawnLines}A\x1b[J`);
    this.#drawnLines = 0;
  }
}
