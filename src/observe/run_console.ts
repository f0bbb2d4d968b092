import process from "node:process";
import { jsonLine, type LogEvent, type LogLevel } from "./log_event.ts";
import type { LogFormat } from "./replication_log.ts";
import { stderrLine } from "./run_observer.ts";

interface Writable {
  write(text: string): unknown;
}

/**
 * What a run writes to stdout (results: summaries, how to continue) and stderr (messages,
 * warnings, events), in the run's `--log-format`: text as it always was, or one JSON object
 * a line.
 */
export class RunConsole {
  constructor(
    readonly format: LogFormat,
    readonly id?: string,
    private readonly out: Writable = process.stdout,
    private readonly err: Writable = process.stderr,
  ) {}

  /** A result line on stdout. */
  print(text: string, level: LogLevel = "info"): void {
    this.out.write(this.#line(level, text));
  }

  /** Lines already in the run's format (summaries) on stdout. */
  printFormatted(text: string): void {
    this.out.write(text.endsWith("\n") ? text : text + "\n");
  }

  /**
   * A result on stdout: the event in json; in text `text`, when there is one (a text table
   * is printed whole with `print` instead).
   */
  result(e: LogEvent, text?: string): void {
    if (this.format === "json") this.out.write(jsonLine(e, this.id));
    else if (text !== undefined) this.print(text, e.level);
  }

  /** A message of the run on stderr. */
  say(level: LogLevel, text: string): void {
    this.err.write(this.#line(level, text));
  }

  /** A structured event on stderr; only the json format has them. */
  emit(e: LogEvent): void {
    if (this.format === "json") this.err.write(jsonLine(e, this.id));
  }

  #line(level: LogLevel, text: string): string {
    return stderrLine(this.format, level, text, this.id);
  }
}
