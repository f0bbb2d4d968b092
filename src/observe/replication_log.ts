import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/** `--log-format`: `text` (`<ts> LEVEL message`) or `json` (`{ts, level, msg, id}` a line). */
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
    return JSON.stringify({ ts: ts.toISOString(), level: level.toLowerCase(), msg: message, id }) +
      "\n";
  }
  return `${ts.toISOString()} ${level} ${message}\n`;
}

/**
 * trace.log and error.log of a replication id (SPEC §6). Lines are appended synchronously:
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

  fail(message: string): void {
    const line = formatLogLine(this.format, "ERROR", message, this.id);
    appendFileSync(this.trace, line);
    appendFileSync(this.error, line);
  }
}
