/**
 * Turns a Redis NOPERM reply (an ACL user without a right) into a SinkError that names the
 * connection file, the user and the right to add: the command (`+xadd`) or the key pattern
 * (`~replicate_io_*`). Redis's own message does not name the key: ioredis keeps the command
 * and its arguments on the error. A denied command inside MULTI surfaces as EXECABORT with the
 * NOPERM among its `previousErrors`; a command a Lua script may not run fails the script.
 *
 * @module
 */
import { SinkError } from "../../core/errors.ts";
import { REDIS_INTERNAL_KEY_PATTERN, RETENTION_SCRIPT_COMMANDS } from "./redis_acl_rules.ts";

interface ReplyError extends Error {
  command?: { name?: string; args?: unknown[] };
  previousErrors?: ReplyError[];
}

const RIGHTS_DOC = `docs/redis.md lists every right Replicant needs`;

/** A SinkError for a NOPERM error (or an EXECABORT caused by one); null for anything else. */
export function permissionError(
  err: unknown,
  target: { origin: string; username?: string },
): SinkError | null {
  if (!(err instanceof Error)) return null;
  const e = err as ReplyError;
  const user = target.username || "default";
  const who = `Redis user ${JSON.stringify(user)} (${target.origin})`;
  // Redis 7.0 does not name the command a script was denied (7.2 answers NOPERM and does).
  if (/user executing the script can't run this command/i.test(e.message)) {
    return new SinkError(
      `${who} may not run a command of Replicant's retention script: ${e.message}. Allow ` +
        `them: ACL SETUSER ${user} ${RETENTION_SCRIPT_COMMANDS.map((c) => "+" + c).join(" ")} ` +
        `(${RIGHTS_DOC})`,
      undefined,
      { cause: err },
    );
  }
  const denied = /^NOPERM/.test(e.message)
    ? e
    : /^EXECABORT/.test(e.message)
    ? e.previousErrors?.find((p) => /^NOPERM/.test(p?.message ?? ""))
    : undefined;
  if (!denied) return null;
  const command = denied.command?.name?.toUpperCase();
  const run = /permissions to run the '([^']+)' command/.exec(denied.message);
  if (run) {
    return new SinkError(
      `${who} may not run ${run[1].toUpperCase()}: ${denied.message}. Allow it: ` +
        `ACL SETUSER ${user} +${run[1].toLowerCase()} (${RIGHTS_DOC})`,
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
        `Allow it: ACL SETUSER ${user} ~${pattern} (${RIGHTS_DOC})`,
      key,
      { cause: err },
    );
  }
  return new SinkError(`${who} lacks a right: ${denied.message} (${RIGHTS_DOC})`, undefined, {
    cause: err,
  });
}
