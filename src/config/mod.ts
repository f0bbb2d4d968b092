/**
 * Configuration files (docs/configuration.md): Arcion-compatible YAML, validated with every problem reported
 * at once (ConfigError, exit code 2) and returned as typed objects with defaults applied.
 */
export {
  ConfigError,
  type ConfigProblem,
  formatProblem,
  formatProblems,
  fromOption,
} from "./config_error.ts";
export type { Loaded, LoadOptions } from "./load_config.ts";
export {
  type Connection,
  CONNECTION_TYPES,
  type ConnectionLoadOptions,
  type ConnectionType,
  type CredentialStore,
  DEFAULT_PORTS,
  type HostPort,
  loadConnection,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
  type ReplicationSlot,
  SOURCE_TYPES,
  type SourceType,
  type SslConfig,
  type SslStoreType,
  type StoreConfig,
} from "./load_connection.ts";
export {
  defaultExtractor,
  type ExtractorConfig,
  type HeartbeatConfig,
  loadExtractor,
  type PerTableConfig,
  type RealtimeExtractorConfig,
  type SnapshotExtractorConfig,
  type StartPosition,
  type TableExtractorConfig,
  tableExtractorConfig,
} from "./load_extractor.ts";
export {
  type ApplierConfig,
  defaultApplier,
  loadApplier,
  type RealtimeApplierConfig,
  type RetentionOptions,
  type SnapshotApplierConfig,
  STREAM_DEFAULTS,
  type StreamOptions,
} from "./load_applier.ts";
export {
  type FilterConfig,
  type FilterEntry,
  type FilterObjectType,
  loadFilter,
  type TableRule,
} from "./load_filter.ts";
export {
  columnSelected,
  matchColumnNames,
  selectedColumns,
  type TableColumns,
  tableNamed,
  type TableRef,
  tableSelected,
  unknownFilterColumns,
} from "./table_selected.ts";
export { type Env, parseYaml, readYaml, type YamlDocument } from "./read_yaml.ts";
export { isSecretUrl, type SecretRef } from "./secret_ref.ts";
