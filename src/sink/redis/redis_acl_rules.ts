/**
 * The Redis ACL rights Replicant needs on a standalone Redis, derived from what the sink, the
 * checkpoint store, the schema dump, retention, verify, the commands and test-connection send
 * (docs/redis.md, "ACL users and the rights Replicant needs"): the recommended `ACL SETUSER`
 * rules for a dedicated user. One set for every feature: test-connection, which sees no
 * applier file, checks all of it.
 *
 * @module
 */

/** Every command (or `command|subcommand`) Replicant sends. */
export const REDIS_ACL_COMMANDS = [
  // Connections: ioredis' ready check (INFO), names, liveness; CLIENT ID/LIST let a lost
  // batch be examined only once Redis dropped its connection (without them: no wait).
  "ping",
  "info",
  "quit",
  "client|setname",
  "client|id",
  "client|list",
  // Entries: write, undo (XDEL), resume (tails), write modes, GLOBAL cleanup.
  "xadd",
  "xdel",
  "xtrim",
  "xlen",
  "xrange",
  "xrevrange",
  "exists",
  "del",
  // Checkpoints (a hash per id; HDEL forgets the retention of replaced streams) and the
  // schema dump (one MULTI).
  "hset",
  "hget",
  "hgetall",
  "hdel",
  "multi",
  "exec",
  // Retention: one Lua script per call, and what it calls besides XLEN, XRANGE and XTRIM
  // (Redis checks every command a script runs against the caller's rights).
  "eval",
  "evalsha",
  "type",
  "time",
  "xinfo|groups",
  "xpending",
  // verify: whether max-stream-length shortened a stream (entries added against length).
  "xinfo|stream",
  // test-connection names the user it checks.
  "acl|whoami",
] as const;

/** What retention's trimming script calls (each needs the caller's right, like EVAL itself). */
export const RETENTION_SCRIPT_COMMANDS = [
  "type",
  "time",
  "xlen",
  "xrange",
  "xinfo|groups",
  "xpending",
  "xtrim",
] as const;

/** Internal keys: checkpoints, schema dump, GLOBAL and DDL streams, test-connection probes. */
export const REDIS_INTERNAL_KEY_PATTERN = "replicate_io_*";

/**
 * `ACL SETUSER <user> on >password …` rules: only Replicant's commands, on the internal keys
 * and the given table stream patterns (e.g. `<catalog>_*`), no Pub/Sub channels.
 */
export function redisAclRules(
  streamPatterns: readonly string[],
  internalPatterns: readonly string[] = [REDIS_INTERNAL_KEY_PATTERN],
): string[] {
  return [
    "resetkeys",
    ...[...internalPatterns, ...streamPatterns].map((p) => `~${p}`),
    "resetchannels",
    "-@all",
    ...REDIS_ACL_COMMANDS.map((c) => `+${c}`),
  ];
}
