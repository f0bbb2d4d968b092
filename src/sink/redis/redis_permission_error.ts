/**
 * Turns a Redis NOPERM reply (an ACL user without a right) into a SinkError that names the
 * connection file, the user and the right to add: the command (`+xadd`) or the key pattern
 * (`~replicate_io_*`). Redis's own message does not name the key: ioredis keeps the command
 * and its arguments on the error. A denied command inside MULTI surfaces as EXECABORT with the
 * NOPERM among its `previousErrors`.
 *
 * @module
 */
import { SinkError } from "../../core/errors.ts";
import { REDIS_INTERNAL_KEY_PATTERN } from "./redis_acl_rules.ts";

interface ReplyError extends Error {
  command?: { name?: string; args?: unknown[] };
  previousErrors?: ReplyError[];
}

const README = `README "Redis ACL" lists every right Replicant needs`;

/** A SinkError for a NOPERM error (or an EXECABORT caused by one); null for anything else. */
export function permissionError(
  err: unknown,
  target: { origin: string; username?: string },
): SinkError | null {
  if (!(err instanceof Error)) return null;
  const e = err as ReplyError;
  const denied = /^NOPERM/.test(e.message)
    ? e
    : /^EXECABORT/.test(e.message)
    ? e.previousErrors?.find((p) => /^NOPERM/.test(p?.message ?? ""))
    : undefined;
  if (!denied) return null;
  const user = target.username || "default";
  const who = `Redis user ${JSON.stringify(user)} (${target.origin})`;
  const command = denied.command?.name?.toUpperCase();
  const run = /permissions to run the '([^']+)' command/.exec(denied.message);
  if (run) {
    return new SinkError(
      `${who} may not run ${run[1].toUpperCase()}: ${denied.message}. Allow it: ` +
        `ACL SETUSER ${user} +${run[1].toLowerCase()} (${README})`,
      undefined,
      { cause: err },
    );
  }
  const key = denied.command?.args?.[0];
  if (/keys?\b/i.test(denied.message) && typeof key === "string") {
    const pattern = key.startsWith(REDIS_INTERNAL_KEY_PATTERN.slice(0, -1))
      ? REDIS_INTERNAL_KEY_PATTERN
      : key;
    return new SinkError(
      `${who} may not access key ${key}${command ? ` (${command})` : ""}: ${denied.message}. ` +
        `Allow it: ACL SETUSER ${user} ~${pattern} (${README})`,
      key,
      { cause: err },
    );
  }
  return new SinkError(`${who} lacks a right: ${denied.message} (${README})`, undefined, {
    cause: err,
  });
}
