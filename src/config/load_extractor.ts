import { failLoad, finishLoad, type Loaded, type LoadOptions } from "./load_config.ts";
import type { SourceType } from "./load_connection.ts";
import { readYaml } from "./read_yaml.ts";
import { parseStartTimestamp } from "./start_timestamp.ts";
import {
  bool,
  camelCase,
  check,
  Checker,
  custom,
  int,
  INVALID,
  listOf,
  mapOf,
  obj,
  type ObjectOf,
  str,
} from "./schema.ts";

export interface TableExtractorConfig {
  /** Column used to cut the table into parallel jobs. */
  splitKey?: string;
  maxJobsPerChunk?: number;
}

export interface PerTableConfig {
  catalog?: string;
  schema?: string;
  /** Table name → settings. */
  tables: Record<string, TableExtractorConfig>;
}

export interface SnapshotExtractorConfig {
  threads: number;
  fetchSizeRows: number;
  minJobSizeRows: number;
  maxJobsPerChunk: number;
  /** Split key for every table that has the column and no per-table one. */
  splitKey?: string;
  perTableConfig: PerTableConfig[];
}

export interface HeartbeatConfig {
  enable: boolean;
  /** Database of the table; absent means the connection's. */
  catalog?: string;
  /** PostgreSQL schema of the table; absent means `public`. */
  schema?: string;
  tableName: string;
  /** `column-name` (Arcion's source pages) or `timestamp-column-name` (its reference). */
  columnName: string;
  /** `replicantId-column-name`: a key column holding the replication id, one row per id. */
  replicantIdColumnName?: string;
  intervalMs: number;
}

/**
 * Where realtime starts when not resuming: PostgreSQL `lsn` (Arcion: `start-lsn`); MySQL
 * `log`+`position` (optionally rewound by `rewindMinutes`) or `gtid`; either source a
 * `startTimestampMs` (the first transaction committed at or after it).
 */
export interface StartPosition {
  lsn?: string;
  log?: string;
  position?: number;
  gtid?: string;
  startTimestampMs?: number;
  rewindMinutes?: number;
}

export interface RealtimeExtractorConfig {
  threads: number;
  fetchSizeRows: number;
  /** Without it (or with `enable: false`) PostgreSQL uses pg_logical_emit_message. */
  heartbeat: HeartbeatConfig;
  startPosition?: StartPosition;
  ddlReplication: { enable: boolean };
}

export interface ExtractorConfig extends Loaded {
  snapshot: SnapshotExtractorConfig;
  realtime: RealtimeExtractorConfig;
}

// ---------------------------------------------------------------------------------------

/**
 * Arcion's switches for copying constraints, indexes and DDL to a target database: a stream
 * holds entries, not tables (keys are always read to key the entries).
 */
const FETCH_METADATA = "Replicant creates no target tables; it reads keys to key entries";
const FETCH_METADATA_IGNORED = {
  "fetch-create-sql": FETCH_METADATA,
  "fetch-identity-info": FETCH_METADATA,
  "fetch-PK": FETCH_METADATA,
  "fetch-UK": FETCH_METADATA,
  "fetch-FK": FETCH_METADATA,
  "fetch-indexes": FETCH_METADATA,
};

const tableSchema = obj({
  "split-key": str({ nonEmpty: true }),
  "max-jobs-per-chunk": int({ min: 1 }),
}, {
  ignored: {
    "row-identifier-key": "Replicant keys rows by primary key, else unique key, else all columns",
    "split-method": "",
    "split-hints": "",
    "num-jobs": "",
    "extraction-method": "",
    "extraction-priority": "",
    "tpt-num-files-per-job": "",
    normalize: "",
    "num-delete-jobs": "",
    ...FETCH_METADATA_IGNORED,
  },
});

const perTableSchema = obj({
  catalog: str({ nonEmpty: true }),
  schema: str({ nonEmpty: true }),
  tables: mapOf(tableSchema, { required: true }),
});

/** Why `computed-columns` is ignored: what each source's log does with generated columns. */
function generatedColumnsReason(source: SourceType): string {
  return source === "POSTGRESQL"
    ? "PostgreSQL's logical replication does not send stored generated columns, so Replicant " +
      "leaves them out of snapshot and realtime entries alike (docs/postgresql.md)"
    : "generated columns (STORED and VIRTUAL) are in the row images and are replicated as " +
      "ordinary columns";
}

const snapshotSchemaFor = (source: SourceType) =>
  obj({
    threads: int({ min: 1, default: 8 }),
    "fetch-size-rows": int({ min: 1, default: 5_000 }),
    "min-job-size-rows": int({ min: 1, default: 1_000_000 }),
    "max-jobs-per-chunk": int({ min: 1, default: 32 }),
    "split-key": str({ nonEmpty: true }),
    "per-table-config": listOf(perTableSchema),
  }, {
    ignored: {
      lock: "",
      "split-method": "",
      "extraction-method": "",
      "tpt-num-files-per-job": "",
      ...FETCH_METADATA_IGNORED,
      "fetch-Indexes": FETCH_METADATA,
      "fetch-user-roles": FETCH_METADATA,
      "fetch-schemas-from-system-tables": "Replicant always reads the source's catalog",
      "allow-table-extraction-overlap": "",
      "computed-columns": generatedColumnsReason(source),
      "enable-extraction-governor": "Replicant bounds its memory itself (a byte-bounded queue)",
      "extraction-governor-wait-ms": "Replicant bounds its memory itself (a byte-bounded queue)",
      "fetch-partition-tables": "a partitioned table replicates as one table, through its parent",
      normalize: "",
    },
    misplaced: {
      heartbeat: "under `realtime`",
      "start-position": "under `realtime`",
      "ddl-replication": "under `realtime`",
    },
  });

const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

const heartbeatSchema = obj({
  enable: bool({ default: false }),
  catalog: str({ nonEmpty: true }),
  schema: str({ nonEmpty: true }),
  "table-name": str({ nonEmpty: true, default: "replicate_io_cdc_heartbeat" }),
  "column-name": str({ nonEmpty: true }),
  "timestamp-column-name": str({ nonEmpty: true }),
  "replicantId-column-name": str({ nonEmpty: true }),
  "interval-ms": int({ min: 1, default: 10_000 }),
}, {
  check(out, path, c) {
    if (
      out.columnName !== undefined && out.timestampColumnName !== undefined &&
      out.columnName !== out.timestampColumnName
    ) {
      c.problem(
        [...path, "timestamp-column-name"],
        `names the same column as \`column-name\` (${out.columnName}); keep only one`,
      );
    }
  },
});

const lsnSchema = () =>
  str({ pattern: LSN, patternMessage: "must be a PostgreSQL LSN such as 0/1528A70" });

const startTimestampSchema = custom<number>((value, path, c) => {
  // YAML reads an unquoted ISO time as a date: the text as written keeps its zone rule.
  const parsed = parseStartTimestamp(
    value instanceof Date ? c.raw(path) ?? value.toISOString() : value,
  );
  return typeof parsed === "number" ? parsed : c.problem(path, parsed.problem);
});

const startPositionSchema = obj({
  lsn: lsnSchema(),
  "start-lsn": lsnSchema(),
  log: str({ nonEmpty: true }),
  position: int({ min: 0 }),
  gtid: str({ nonEmpty: true }),
  "start-timestamp": startTimestampSchema,
  "rewind-realtime-start-position-m": int({ min: 1 }),
}, { optional: true });

const ddlReplicationSchema = obj({
  enable: bool({ default: false }),
}, {
  ignored: {
    "ddl-replication-mode": "Replicant writes DDL to its DDL stream and does not re-initialize",
    "detect-ddl-interval": "",
  },
});

const realtimeSchema = obj({
  threads: int({ min: 1, default: 1 }),
  "fetch-size-rows": int({ min: 1, default: 10_000 }),
  heartbeat: heartbeatSchema,
  "start-position": startPositionSchema,
  "ddl-replication": ddlReplicationSchema,
}, {
  ignored: {
    "fetch-duration-per-extractor-slot-s": "",
    "fetch-interval-s": "",
    "idempotent-replay": "",
    "bin-log-idle-timeout-s": "",
    "per-table-config": "",
    normalize: "",
    "fetch-identity-info": FETCH_METADATA,
    "replicate-to-child-partition-table":
      "a partitioned table replicates as one table, through its parent",
  },
  misplaced: { "min-job-size-rows": "under `snapshot`", "split-key": "under `snapshot`" },
});

const extractorSchemaFor = (source: SourceType) =>
  obj({
    snapshot: snapshotSchemaFor(source),
    realtime: realtimeSchema,
  }, {
    ignored: { "delta-snapshot": "Replicant has no delta-snapshot mode" },
    misplaced: {
      threads: "under `snapshot` or `realtime`",
      "fetch-size-rows": "under `snapshot` or `realtime`",
      "min-job-size-rows": "under `snapshot`",
      "max-jobs-per-chunk": "under `snapshot`",
      "split-key": "under `snapshot`",
      "per-table-config": "under `snapshot`",
      heartbeat: "under `realtime`",
      "start-position": "under `realtime`",
      "ddl-replication": "under `realtime`",
    },
  });

type ExtractorOut = ObjectOf<{
  snapshot: ReturnType<typeof snapshotSchemaFor>;
  realtime: typeof realtimeSchema;
}>;

function checkStartPosition(out: ExtractorOut, sourceType: SourceType, c: Checker): void {
  const start = out.realtime.startPosition;
  if (!start) return;
  const at = (key: string) => ["realtime", "start-position", key];
  const given = (key: keyof typeof start) => start[key] !== undefined;
  if (sourceType === "POSTGRESQL") {
    for (const key of ["log", "position", "gtid", "rewind-realtime-start-position-m"] as const) {
      if (start[camelCase(key) as keyof typeof start] !== undefined) {
        c.problem(
          at(key),
          "applies to MySQL/MariaDB sources; PostgreSQL starts at `start-lsn` (or `lsn`) or " +
            "`start-timestamp`",
        );
      }
    }
    if (given("lsn") && given("startLsn") && start.lsn !== start.startLsn) {
      c.problem(at("start-lsn"), "is the same setting as `lsn`; keep only one");
    }
    const lsn = given("lsn") || given("startLsn");
    if (lsn && given("startTimestamp")) {
      c.problem(at("start-timestamp"), "give either an LSN or `start-timestamp`, not both");
    }
    if (!lsn && !given("startTimestamp")) {
      c.problem(
        ["realtime", "start-position"],
        "needs `start-lsn` (or `lsn`) or `start-timestamp`",
      );
    }
    return;
  }
  for (const key of ["lsn", "start-lsn"] as const) {
    if (start[camelCase(key) as keyof typeof start] !== undefined) {
      c.problem(
        at(key),
        "applies to PostgreSQL sources; MySQL/MariaDB start at `log` and `position`, `gtid` " +
          "or `start-timestamp`",
      );
    }
  }
  if (given("log") && !given("position")) c.problem(at("position"), "required with `log`");
  if (given("position") && !given("log")) c.problem(at("log"), "required with `position`");
  if (given("rewindRealtimeStartPositionM") && !given("log")) {
    c.problem(at("rewind-realtime-start-position-m"), "works with `log` and `position`");
  }
  const ways = [given("log") || given("position"), given("gtid"), given("startTimestamp")]
    .filter(Boolean).length;
  if (ways > 1) {
    c.problem(
      ["realtime", "start-position"],
      "give one start: `log` and `position`, `gtid`, or `start-timestamp`",
    );
  }
  if (ways === 0 && !given("lsn") && !given("startLsn")) {
    c.problem(
      ["realtime", "start-position"],
      "needs `log` and `position`, `gtid`, or `start-timestamp`",
    );
  }
}

/**
 * The heartbeat table is MySQL/MariaDB's: PostgreSQL moves its slot with
 * pg_logical_emit_message every `interval-ms` instead, so the table's keys are unused there;
 * and MySQL tables have no schema.
 */
function checkHeartbeat(doc: unknown, sourceType: SourceType, c: Checker): void {
  const hb = (doc as { realtime?: { heartbeat?: unknown } } | null)?.realtime?.heartbeat;
  if (hb === null || typeof hb !== "object" || Array.isArray(hb)) return;
  for (const key of Object.keys(hb)) {
    const path = ["realtime", "heartbeat", key];
    if (sourceType === "POSTGRESQL" && key !== "interval-ms" && key !== "intervalMs") {
      c.warn(
        path,
        "ignored for PostgreSQL: Replicant writes no heartbeat table there; it moves the slot " +
          "with pg_logical_emit_message every `interval-ms` while the tables are idle",
      );
    } else if (sourceType !== "POSTGRESQL" && key === "schema") {
      c.warn(path, "ignored: MySQL/MariaDB tables have no schema (`catalog` is the database)");
    }
  }
}

function toExtractor(out: ExtractorOut): Omit<ExtractorConfig, keyof Loaded> {
  const { columnName, timestampColumnName, replicantIdColumnName, ...hb } = out.realtime.heartbeat;
  const start = out.realtime.startPosition;
  return {
    snapshot: out.snapshot,
    realtime: {
      threads: out.realtime.threads,
      fetchSizeRows: out.realtime.fetchSizeRows,
      heartbeat: {
        ...hb,
        columnName: columnName ?? timestampColumnName ?? "timestamp",
        ...(replicantIdColumnName !== undefined ? { replicantIdColumnName } : {}),
      },
      ...(start ? { startPosition: toStartPosition(start) } : {}),
      ddlReplication: out.realtime.ddlReplication,
    },
  };
}

function toStartPosition(
  start: NonNullable<ExtractorOut["realtime"]["startPosition"]>,
): StartPosition {
  const out: StartPosition = {};
  const lsn = start.lsn ?? start.startLsn;
  if (lsn !== undefined) out.lsn = lsn;
  if (start.log !== undefined) out.log = start.log;
  if (start.position !== undefined) out.position = start.position;
  if (start.gtid !== undefined) out.gtid = start.gtid;
  if (start.startTimestamp !== undefined) out.startTimestampMs = start.startTimestamp;
  if (start.rewindRealtimeStartPositionM !== undefined) {
    out.rewindMinutes = start.rewindRealtimeStartPositionM;
  }
  return out;
}

/** Reads an extractor file (conf/src/*.yaml) for a source of the given type. */
export function loadExtractor(
  path: string,
  sourceType: SourceType,
  options: LoadOptions = {},
): ExtractorConfig {
  const doc = readYaml(path, options.env);
  const checker = new Checker(doc.rawScalars);
  const out = check(extractorSchemaFor(sourceType), doc.data, [], checker);
  if (out === INVALID) failLoad(path, doc.problems, checker);
  checkStartPosition(out, sourceType, checker);
  checkHeartbeat(doc.data, sourceType, checker);
  return finishLoad(path, doc.problems, checker, toExtractor(out));
}

/** The settings used when no extractor file is given. */
export function defaultExtractor(): ExtractorConfig {
  const checker = new Checker();
  // No keys, so no warnings: the source type changes nothing here.
  const out = check(extractorSchemaFor("POSTGRESQL"), {}, [], checker);
  if (out === INVALID) throw new Error("extractor defaults do not validate");
  return { ...toExtractor(out), warnings: [] };
}

/** Snapshot settings for one table: its per-table entry over the section's. */
export function tableExtractorConfig(
  snapshot: SnapshotExtractorConfig,
  table: { catalog?: string | null; schema?: string | null; table: string },
): { splitKey?: string; maxJobsPerChunk: number } {
  let found: TableExtractorConfig | undefined;
  let foundExact = false;
  for (const entry of snapshot.perTableConfig) {
    if (entry.catalog !== undefined && !sameName(entry.catalog, table.catalog)) continue;
    if (entry.schema !== undefined && !sameName(entry.schema, table.schema)) continue;
    for (const [name, config] of Object.entries(entry.tables)) {
      // Arcion samples write names upper-case (LINEITEM); an exact spelling wins over that.
      if (name === table.table) {
        found = config;
        foundExact = true;
      } else if (!foundExact && !found && sameName(name, table.table)) {
        found = config;
      }
    }
  }
  const splitKey = found?.splitKey ?? snapshot.splitKey;
  return {
    ...(splitKey !== undefined ? { splitKey } : {}),
    maxJobsPerChunk: found?.maxJobsPerChunk ?? snapshot.maxJobsPerChunk,
  };
}

function sameName(a: string, b: string | null | undefined): boolean {
  return b !== null && b !== undefined && a.toLowerCase() === b.toLowerCase();
}
