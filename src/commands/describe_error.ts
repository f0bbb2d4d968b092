import { ReplicantError } from "../core/errors.ts";

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
