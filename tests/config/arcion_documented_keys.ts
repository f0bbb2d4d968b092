/**
 * Every configuration key Arcion documents for the sources Replicant reads (MySQL, MariaDB,
 * PostgreSQL) and the target it writes (Redis Streams), written down from Arcion's pages:
 * the MySQL, MariaDB and PostgreSQL source setup pages (connection, filter and extractor
 * samples, "additional parameters"), the Extractor, Filter and Applier references, the Redis
 * Streams target page, and the credential store page. Older revisions of the same pages add
 * `ddl-replication` (`ddl-replication-mode`, `detect-ddl-interval`), per-table `num-delete-jobs`
 * and PostgreSQL's `realtime.replicate-to-child-partition-table`.
 *
 * Each key comes with a value of the documented kind and what Replicant does with it:
 * `used` (no warning), or `warned` (accepted with exactly one warning; `at` names the key the
 * warning is about when it is an enclosing section). None may be rejected.
 */

export type FileKind =
  | "conn:MYSQL"
  | "conn:MARIADB"
  | "conn:POSTGRESQL"
  | "conn:REDIS_STREAM"
  | "extractor:MYSQL"
  | "extractor:MARIADB"
  | "extractor:POSTGRESQL"
  | "filter"
  | "applier";

export interface DocumentedKey {
  files: FileKind[];
  /** Dotted path; `[0]` for list items. */
  key: string;
  value: unknown;
  outcome: "used" | "warned";
  /** The key the one warning names, when not `key` itself. */
  at?: string;
  /** Other keys the file needs for this one to make sense (a catalog for a per-table entry). */
  with?: Record<string, unknown>;
}

const MYSQL_CONN: FileKind[] = ["conn:MYSQL", "conn:MARIADB"];
const SOURCE_CONN: FileKind[] = [...MYSQL_CONN, "conn:POSTGRESQL"];
const ALL_CONN: FileKind[] = [...SOURCE_CONN, "conn:REDIS_STREAM"];
const MYSQL_EXT: FileKind[] = ["extractor:MYSQL", "extractor:MARIADB"];
const PG_EXT: FileKind[] = ["extractor:POSTGRESQL"];
const ALL_EXT: FileKind[] = [...MYSQL_EXT, ...PG_EXT];

const used = (files: FileKind[], key: string, value: unknown, extra: Partial<DocumentedKey> = {}) =>
  ({ files, key, value, outcome: "used", ...extra }) as DocumentedKey;
const warned = (
  files: FileKind[],
  key: string,
  value: unknown,
  extra: Partial<DocumentedKey> = {},
) => ({ files, key, value, outcome: "warned", ...extra }) as DocumentedKey;

const PER_TABLE = "snapshot.per-table-config[0]";
const perTable = (files: FileKind[], name: string, value: unknown, outcome: "used" | "warned") => ({
  files,
  key: `${PER_TABLE}.tables.ORDERS.${name}`,
  value,
  outcome,
  with: { [`${PER_TABLE}.catalog`]: "tpch" },
});

export const DOCUMENTED_KEYS: DocumentedKey[] = [
  // ------------------------------------------------------------------ connection files
  used(ALL_CONN, "host", "db.example.org"),
  used(ALL_CONN, "port", 4000),
  used(ALL_CONN, "username", "replicant"),
  used(ALL_CONN, "password", "s3cret"),
  used(ALL_CONN, "max-connections", 30),
  used(ALL_CONN, "max-retries", 10),
  used(SOURCE_CONN, "retry-wait-duration-ms", 1000),
  used(MYSQL_CONN, "slave-server-ids", [101]),
  used(["conn:POSTGRESQL"], "database", "postgres"),
  used(["conn:POSTGRESQL"], "replication-slots", { arcion_test: ["pgoutput"] }),
  warned(["conn:POSTGRESQL"], "socket-timeout-s", 60),
  warned(["conn:POSTGRESQL"], "log-reader-type", "STREAM"),
  used(ALL_CONN, "ssl.enable", true),
  used(SOURCE_CONN, "ssl.root-cert", "/etc/ssl/ca.pem"),
  used(SOURCE_CONN, "ssl.ssl-cert", "/etc/ssl/client.pem", {
    with: { "ssl.ssl-key": "/etc/ssl/client.key" },
  }),
  used(SOURCE_CONN, "ssl.ssl-key", "/etc/ssl/client.key", {
    with: { "ssl.ssl-cert": "/etc/ssl/client.pem" },
  }),
  used(SOURCE_CONN, "ssl.hostname-verification", false),
  used(ALL_CONN, "ssl.trust-store.path", "/etc/ssl/trust.p12"),
  used(ALL_CONN, "ssl.trust-store.password", "changeit", {
    with: { "ssl.trust-store.path": "/etc/ssl/trust.p12" },
  }),
  used(["conn:REDIS_STREAM"], "ssl.trust-store.ssl-store-type", "PKCS12", {
    with: { "ssl.trust-store.path": "/etc/ssl/trust.p12" },
  }),
  used(ALL_CONN, "ssl.key-store.path", "/etc/ssl/key.p12"),
  used(ALL_CONN, "ssl.key-store.password", "changeit", {
    with: { "ssl.key-store.path": "/etc/ssl/key.p12" },
  }),
  used(["conn:REDIS_STREAM"], "ssl.key-store.ssl-store-type", "JKS", {
    with: { "ssl.key-store.path": "/etc/ssl/key.jks" },
  }),
  // A Java keystore of credentials: with username and password also given, it is ignored.
  warned(SOURCE_CONN, "credential-store.type", "PKCS12", {
    at: "credential-store",
    with: { "credential-store.path": "/etc/replicant/creds.p12" },
  }),
  warned(SOURCE_CONN, "credential-store.path", "/etc/replicant/creds.p12", {
    at: "credential-store",
  }),
  warned(SOURCE_CONN, "credential-store.key-prefix", "mysql_", {
    at: "credential-store",
    with: { "credential-store.path": "/etc/replicant/creds.p12" },
  }),

  // ------------------------------------------------------------------ filter files
  used(["filter"], "allow[0].catalog", "tpch"),
  used(["filter"], "allow[0].schema", "public"),
  used(["filter"], "allow[0].types", ["TABLE"]),
  warned(["filter"], "allow[0].types", ["TABLE", "VIEW", "QUERY"]),
  used(["filter"], "allow[0].allow.NATION", null),
  used(["filter"], "allow[0].allow.NATION.allow", ["US, AUS"]),
  warned(["filter"], "allow[0].allow.ORDERS.conditions", "o_orderkey < 5000"),
  warned(["filter"], "allow[0].allow.ORDERS.src-conditions", "o_orderkey < 5000"),
  warned(["filter"], "allow[0].allow.ORDERS.dst-conditions", "o_orderkey < 5000"),
  warned(["filter"], "allow[0].allow.ORDERS.allow-update-any", ["o_status"]),
  warned(["filter"], "allow[0].allow.ORDERS.allow-update-all", ["o_status"]),

  // ------------------------------------------------------------------ extractor: snapshot
  used(ALL_EXT, "snapshot.threads", 16),
  used(ALL_EXT, "snapshot.fetch-size-rows", 15_000),
  warned(ALL_EXT, "snapshot.lock", {
    enable: true,
    scope: "TABLE",
    force: false,
    "timeout-sec": 5,
  }),
  used(ALL_EXT, "snapshot.min-job-size-rows", 1_000_000),
  used(ALL_EXT, "snapshot.max-jobs-per-chunk", 32),
  used(ALL_EXT, "snapshot.split-key", "id"),
  warned(ALL_EXT, "snapshot.split-method", "RANGE"),
  warned(ALL_EXT, "snapshot.extraction-method", "QUERY"),
  warned(ALL_EXT, "snapshot.enable-extraction-governor", true),
  warned(ALL_EXT, "snapshot.extraction-governor-wait-ms", 100),
  warned(ALL_EXT, "snapshot.tpt-num-files-per-job", 16),
  warned(ALL_EXT, "snapshot.fetch-PK", true),
  warned(ALL_EXT, "snapshot.fetch-UK", true),
  warned(ALL_EXT, "snapshot.fetch-FK", true),
  warned(ALL_EXT, "snapshot.fetch-indexes", true),
  warned(ALL_EXT, "snapshot.fetch-user-roles", false),
  warned(ALL_EXT, "snapshot.normalize", { enable: false }),
  warned(ALL_EXT, "snapshot.fetch-schemas-from-system-tables", true),
  warned(ALL_EXT, "snapshot.allow-table-extraction-overlap", true),
  warned(ALL_EXT, "snapshot.fetch-create-sql", false),
  warned(ALL_EXT, "snapshot.fetch-identity-info", true),
  warned(MYSQL_EXT, "snapshot.computed-columns", "UNBLOCK"),
  warned(PG_EXT, "snapshot.fetch-partition-tables", true),
  warned(ALL_EXT, "snapshot._traceDBTasks", true),
  used(ALL_EXT, `${PER_TABLE}.catalog`, "tpch", { with: { [`${PER_TABLE}.tables.ORDERS`]: null } }),
  used(PG_EXT, `${PER_TABLE}.schema`, "public", { with: { [`${PER_TABLE}.tables.ORDERS`]: null } }),
  perTable(ALL_EXT, "max-jobs-per-chunk", 1, "used"),
  perTable(ALL_EXT, "split-key", "o_orderkey", "used"),
  perTable(ALL_EXT, "split-method", "MODULO", "warned"),
  perTable(ALL_EXT, "extraction-method", "QUERY", "warned"),
  perTable(ALL_EXT, "tpt-num-files-per-job", 16, "warned"),
  perTable(ALL_EXT, "row-identifier-key", ["o_orderkey"], "warned"),
  perTable(ALL_EXT, "extraction-priority", 1, "warned"),
  perTable(ALL_EXT, "normalize", { "extract-upto-depth": 3 }, "warned"),
  perTable(ALL_EXT, "fetch-create-sql", false, "warned"),
  perTable(ALL_EXT, "fetch-identity-info", false, "warned"),
  perTable(ALL_EXT, "fetch-PK", true, "warned"),
  perTable(ALL_EXT, "fetch-UK", true, "warned"),
  perTable(ALL_EXT, "fetch-FK", true, "warned"),
  perTable(ALL_EXT, "fetch-indexes", true, "warned"),
  perTable(MYSQL_EXT, "num-jobs", 1, "warned"),
  perTable(ALL_EXT, "num-delete-jobs", 1, "warned"),
  perTable(PG_EXT, "split-hints", { "row-count-estimate": 15000 }, "warned"),

  // ------------------------------------------------------------------ extractor: realtime
  used(ALL_EXT, "realtime.threads", 4),
  used(ALL_EXT, "realtime.fetch-size-rows", 10_000),
  warned(ALL_EXT, "realtime.fetch-duration-per-extractor-slot-s", 3),
  warned(ALL_EXT, "realtime.fetch-interval-s", 5),
  warned(ALL_EXT, "realtime.idempotent-replay", "NEVER"),
  warned(ALL_EXT, "realtime.normalize", { enable: false }),
  warned(ALL_EXT, "realtime.fetch-identity-info", false),
  warned(ALL_EXT, "realtime.per-table-config", [{ schema: "tpch", tables: { lineitem: null } }]),
  warned(ALL_EXT, "realtime._traceDBTasks", true),
  warned(MYSQL_EXT, "realtime.bin-log-idle-timeout-s", 600),
  warned(PG_EXT, "realtime.replicate-to-child-partition-table", true),
  used(ALL_EXT, "realtime.ddl-replication.enable", true),
  warned(ALL_EXT, "realtime.ddl-replication.ddl-replication-mode", "INLINE"),
  warned(ALL_EXT, "realtime.ddl-replication.detect-ddl-interval", 10),
  // Heartbeat: MySQL/MariaDB write Arcion's heartbeat table; PostgreSQL moves its slot with
  // pg_logical_emit_message every interval-ms and says the table keys are not used.
  used(MYSQL_EXT, "realtime.heartbeat.enable", true, {
    with: { "realtime.heartbeat.catalog": "tpch" },
  }),
  used(MYSQL_EXT, "realtime.heartbeat.catalog", "tpch"),
  used(MYSQL_EXT, "realtime.heartbeat.table-name", "replicate_io_cdc_heartbeat"),
  used(MYSQL_EXT, "realtime.heartbeat.column-name", "timestamp"),
  used(MYSQL_EXT, "realtime.heartbeat.timestamp-column-name", "arcion_replicant_timestamp"),
  used(MYSQL_EXT, "realtime.heartbeat.replicantId-column-name", "arcion_replicant_id"),
  used(ALL_EXT, "realtime.heartbeat.interval-ms", 100),
  warned(MYSQL_EXT, "realtime.heartbeat.schema", "public"),
  warned(PG_EXT, "realtime.heartbeat.enable", true),
  warned(PG_EXT, "realtime.heartbeat.catalog", "postgres"),
  warned(PG_EXT, "realtime.heartbeat.schema", "public"),
  warned(PG_EXT, "realtime.heartbeat.table-name", "replicate_io_cdc_heartbeat"),
  warned(PG_EXT, "realtime.heartbeat.column-name", "timestamp"),
  warned(PG_EXT, "realtime.heartbeat.timestamp-column-name", "arcion_replicant_timestamp"),
  warned(PG_EXT, "realtime.heartbeat.replicantId-column-name", "arcion_replicant_id"),
  // Start positions.
  used(MYSQL_EXT, "realtime.start-position.log", "mysql-log.000019", {
    with: { "realtime.start-position.position": 4436 },
  }),
  used(MYSQL_EXT, "realtime.start-position.position", 4436, {
    with: { "realtime.start-position.log": "mysql-log.000019" },
  }),
  used(MYSQL_EXT, "realtime.start-position.start-timestamp", "2023-06-30 10:15 UTC"),
  used(MYSQL_EXT, "realtime.start-position.rewind-realtime-start-position-m", 30, {
    with: {
      "realtime.start-position.log": "mysql-log.000019",
      "realtime.start-position.position": 4436,
    },
  }),
  used(PG_EXT, "realtime.start-position.start-lsn", "0/3261270"),
  used(PG_EXT, "realtime.start-position.start-timestamp", "2023-06-30 10:15 PST"),

  // ------------------------------------------------------------------ extractor: other sections
  warned(PG_EXT, "delta-snapshot.row-identifier-key", ["orderkey", "suppkey"], {
    at: "delta-snapshot",
  }),
  warned(PG_EXT, "delta-snapshot.replicate-deletes", true, { at: "delta-snapshot" }),

  // ------------------------------------------------------------------ applier (Redis Streams)
  ...(["snapshot", "realtime"] as const).flatMap((s) => [
    used(["applier"], `${s}.threads`, 16),
    used(["applier"], `${s}.batch-size-rows`, 10_000),
    used(["applier"], `${s}.txn-size-rows`, 10_000),
    used(["applier"], `${s}.skip-tables-on-failures`, true),
    warned(["applier"], `${s}.handle-failed-opers`, true),
    warned(["applier"], `${s}.use-quoted-identifiers`, true),
    warned(["applier"], `${s}.per-table-config`, [{ schema: "tpch", tables: {} }]),
  ]),
  used(["applier"], "snapshot.log-row-level-errors", true),
  warned(["applier"], "snapshot.bulk-load", { enable: true, type: "FILE", serialize: true }),
  warned(["applier"], "snapshot.deferred-delete", false),
  warned(["applier"], "snapshot.schema-dictionary", "NONE"),
  warned(["applier"], "snapshot.user-role", { "init-user-role": false }),
  warned(["applier"], "snapshot.init-indexes", true),
  warned(["applier"], "snapshot.init-indexes-post-snapshot", true),
  warned(["applier"], "snapshot.init-constraint-post-snapshot", true),
  warned(["applier"], "snapshot.denormalize", { enable: false }),
  warned(["applier"], "snapshot.use-upsert-based-recovery", false),
  used(["applier"], "realtime.replay-consistency", "GLOBAL"),
  used(["applier"], "realtime.split-stream", false),
  // A Mapper-file key in Arcion; Replicant has no mapper file and reads it from the applier.
  used(["applier"], "object-name-concat-delimiter", "DOT"),
  warned(["applier"], "realtime.before-image-format", "KEY"),
  warned(["applier"], "realtime.after-image-format", "UPDATED"),
  warned(["applier"], "realtime.retry-transactions", true),
  warned(["applier"], "realtime.retry-failed-txn-idempotently", true),
  warned(["applier"], "realtime.skip-upto-cursors", []),
  warned(["applier"], "realtime.replay-shard-key-update-as-delete-insert", "OFF"),
  warned(["applier"], "realtime.replay-replace-as-upsert", false),
  warned(["applier"], "realtime.cdc-metadata-type", "NONE"),
];
