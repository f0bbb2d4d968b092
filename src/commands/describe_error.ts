import { ReplicantError } from "../core/errors.ts";
import { jsonLine, type LogEvent, plainMessage } from "../observe/log_event.ts";
import type { LogFormat } from "../observe/replication_log.ts";

/**
 * The message and exit code of an error that ended a command. Known errors are one clear
 * message without a stack; anything else is an internal error, with its stack under --verbose.
 */
export function describeError(err: unknown, verbose: boolean): { message: string; code: number } {
  const e = err as Error & { exitCode?: number };
  if (err instanceof ReplicantError || (typeof e?.exitCode === "number" && e instanceof Error)) {
    let message = `replicant: ${e.message}`;
    if (verbose && e.stack) message += `\n${e.stack}`;
    if (verbose && e.cause instanceof Error && e.cause.stack) {
      message += `\ncaused by: ${e.cause.stack}`;
    }
    return { message, code: e.exitCode ?? 1 };
  }
  const detail = verbose ? (e?.stack ?? String(err)) : (e?.message ?? String(err));
  return {
    message: `replicant: internal error: ${detail}${
      verbose ? "" : " (run with --verbose for details)"
    }`,
    code: 1,
  };
}

/** What errors carry about their subject (errors.ts, ConfigError, InDoubtError). */
const SUBJECT_FIELDS = ["file", "key", "table", "stream", "streams"] as const;

/**
 * `--log-format json`: the error that ended a command as one `fatal` event: `msg`, `error`
 * (its class), `exit_code`, and what it is about: `file`/`key` (a ConfigError's first
 * problem, all of them in `problems`), `table`, `stream`(s); `stack` under --verbose.
 */
export function fatalEvent(err: unknown, verbose: boolean): { event: LogEvent; code: number } {
  const { message, code } = describeError(err, false);
  const e = err as Error & Record<string, unknown>;
  const fields: Record<string, unknown> = {
    msg: plainMessage(message),
    error: e instanceof Error ? e.name : typeof err,
    exit_code: code,
  };
  const problems = e?.problems as
    | { file: string; key: string; message: string; option?: string }[]
    | undefined;
  if (Array.isArray(problems) && problems.length > 0) {
    fields.file = problems[0].file;
    fields.key = problems[0].key;
    if (problems[0].option) fields.option = problems[0].option;
    fields.problems = problems.map((p) => ({
      file: p.file,
      key: p.key,
      message: p.message,
      ...(p.option ? { option: p.option } : {}),
    }));
  }
  for (const name of SUBJECT_FIELDS) {
    const v = e?.[name];
    if (fields[name] === undefined && (typeof v === "string" || Array.isArray(v))) fields[name] = v;
  }
  if (verbose && e instanceof Error && e.stack) {
    fields.stack = e.stack;
    if (e.cause instanceof Error && e.cause.stack) fields.cause = e.cause.stack;
  }
  return { event: { level: "error", event: "fatal", fields }, code };
}

/** What stderr shows for an error that ended a command, in the run's log format. */
export function errorOutput(
  err: unknown,
  options: { verbose: boolean; format: LogFormat; id?: string },
): { text: string; code: number } {
  if (options.format === "json") {
    const { event, code } = fatalEvent(err, options.verbose);
    return { text: jsonLine(event, options.id), code };
  }
  const { message, code } = describeError(err, options.verbose);
  return { text: message.endsWith("\n") ? message : message + "\n", code };
}

/**
 * A command-line parser complaint (unknown option, missing argument): exit 2. As text, it
 * ends with where the right options are listed: the help of `command` (the subcommand the
 * arguments name, if any).
 */
export function usageOutput(
  text: string,
  format: LogFormat,
  id?: string,
  command?: string,
): string {
  if (format !== "json") {
    const body = text.trimEnd();
    const pointer = `(see replicant ${command ? `${command} ` : ""}--help)`;
    return `${body}${body.includes("\n") ? "\n" : " "}${pointer}\n`;
  }
  const msg = text.trim().replace(/^error: /, "");
  return jsonLine({
    level: "error",
    event: "fatal",
    fields: { msg, error: "UsageError", exit_code: 2 },
  }, id);
}
