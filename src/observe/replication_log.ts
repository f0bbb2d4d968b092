import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { jsonLine, type LogEvent, messageEvent } from "./log_event.ts";

/**
 * `--log-format`: `text` (`<ts> LEVEL message`) or `json` (one object a line: `ts`, `level`,
 * `event`, `id`, then the event's fields; a message is event `log` with `msg`).
 */
export type LogFormat = "text" | "json";

/** One log line (with its newline) in the given format. */
export function formatLogLine(
  format: LogFormat,
  level: "INFO" | "WARN" | "ERROR",
  message: string,
  id?: string,
  ts = new Date(),
): string {
  if (format === "json") {
    return jsonLine(messageEvent(level.toLowerCase() as Lowercase<typeof level>, message), id, ts);
  }
  return `${ts.toISOString()} ${level} ${message}\n`;
}

/**
 * trace.log and error.log of a replication id (`<home>/data/<id>/`). Lines are appended synchronously:
 * they are rare, and a crash must not lose the line that explains it.
 */
export class ReplicationLog {
  readonly trace: string;
  readonly error: string;

  constructor(
    readonly dir: string,
    readonly format: LogFormat = "text",
    readonly id?: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.trace = join(dir, "trace.log");
    this.error = join(dir, "error.log");
  }

  info(message: string): void {
    appendFileSync(this.trace, formatLogLine(this.format, "INFO", message, this.id));
  }

  warn(message: string): void {
    appendFileSync(this.trace, formatLogLine(this.format, "WARN", message, this.id));
  }

  /** A structured event (json format), e.g. statistics; error events go to error.log too. */
  event(e: LogEvent): void {
    const line = jsonLine(e, this.id);
    appendFileSync(this.trace, line);
    if (e.level === "error") appendFileSync(this.error, line);
  }

  fail(message: string): void {
    const line = formatLogLine(this.format, "ERROR", message, this.id);
    appendFileSync(this.trace, line);
    appendFileSync(this.error, line);
  }
}
