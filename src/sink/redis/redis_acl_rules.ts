/**
 * The Redis ACL rights Replicant needs on a standalone Redis, derived from what the sink, the
 * checkpoint store, the schema dump, the commands and test-connection send (README "Redis
 * ACL"): the recommended `ACL SETUSER` rules for a dedicated user.
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
  // Checkpoints (a hash per id) and the schema dump (one MULTI).
  "hset",
  "hget",
  "hgetall",
  "multi",
  "exec",
  // test-connection names the user it checks.
  "acl|whoami",
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
