/**
 * `--log-format json`: every line Replicant writes is one JSON object, so a log
 * pipeline (Loki, ELK, jq) reads the run without parsing prose. Every object starts with
 * `ts`, `level`, `event` and `id`; the rest are the event's own fields (README, Operations).
 */
import process from "node:process";
import { format } from "node:util";

export type LogLevel = "info" | "warn" | "error";

/** A structured event before it is given its time and replication id. */
export interface LogEvent {
  level: LogLevel;
  event: string;
  fields: Record<string, unknown>;
}

/** One JSON line (with its newline); undefined fields are left out. */
export function jsonLine(e: LogEvent, id?: string, ts = new Date()): string {
  return JSON.stringify({ ts: ts.toISOString(), level: e.level, event: e.event, id, ...e.fields }) +
    "\n";
}

/** A plain message as an event: `event` `log`, the text in `msg`. */
export function messageEvent(level: LogLevel, message: string): LogEvent {
  return { level, event: "log", fields: { msg: plainMessage(message) } };
}

/**
 * The text of a message without the blank lines around it and the `replicant: ` prefix, which
 * on a terminal tells Replicant's lines from others' but in a JSON object is noise.
 */
export function plainMessage(message: string): string {
  return message.trim().replace(/^replicant: /, "");
}

/**
 * A number for JSON: rounded to `digits` decimals; null when it is not known (NaN, ∞), since
 * JSON.stringify would turn those into null anyway and a consumer must see the same.
 */
export function rounded(n: number, digits = 1): number | null {
  if (!Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Routes console output to JSON lines on stderr. Replicant itself writes through its own
 * writers; this catches what a dependency prints (ioredis' unhandled error events, driver
 * notices), which would otherwise be the one plain line a log pipeline cannot parse.
 */
export function routeConsoleToJson(id?: string): void {
  const to = (level: LogLevel) => (...args: unknown[]) => {
    process.stderr.write(jsonLine(messageEvent(level, format(...args)), id));
  };
  console.log = to("info");
  console.info = to("info");
  console.debug = to("info");
  console.warn = to("warn");
  console.error = to("error");
}
