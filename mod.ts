/**
 * Replicant's API: what the CLI calls, usable from other programs too.
 * @module
 */
export { EXIT, replicate, type ReplicationMode } from "./src/commands/replicate_command.ts";
export { type CommonOptions } from "./src/commands/common_options.ts";
export { describeError, errorOutput, usageOutput } from "./src/commands/describe_error.ts";
export { cleanupIndoubt } from "./src/commands/cleanup_indoubt_command.ts";
export { fetchSchemas } from "./src/commands/fetch_schemas_command.ts";
export { testConnection } from "./src/commands/test_connection_command.ts";
export { verify } from "./src/commands/verify_command.ts";
export { VERSION, versionText } from "./src/version.ts";
export {
  type EntryOptions,
  type MessageFormat,
  TableEntryEncoder,
} from "./src/core/entry_encoder.ts";
/** The `positionFields` of EntryOptions for each source. */
export { PG_POSITION_FIELDS } from "./src/source/postgres/pgoutput_position.ts";
export { MYSQL_POSITION_FIELDS } from "./src/source/mysql/mysql_position.ts";
export { type DecodedEntry, decodeEntry } from "./src/core/entry_decoder.ts";
export { StreamNaming } from "./src/core/stream_naming.ts";
export * from "./src/core/errors.ts";
export { ConfigError } from "./src/config/mod.ts";
/** What a run counts in; hand one to `replicate` to read a run's metrics. */
export { ReplicantMetrics } from "./src/observe/replicant_metrics.ts";
export { idOfArgv, logFormatOfArgv, stderrLine } from "./src/observe/run_observer.ts";
export { routeConsoleToJson } from "./src/observe/log_event.ts";
