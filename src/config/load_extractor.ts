import { failLoad, finishLoad, type Loaded, type LoadOptions } from "./load_config.ts";
import type { SourceType } from "./load_connection.ts";
import { readYaml } from "./read_yaml.ts";
import {
  bool,
  check,
  Checker,
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
  columnName: string;
  intervalMs: number;
}

/** Where realtime starts when not resuming: PostgreSQL `lsn`, MySQL `log`+`position` or `gtid`. */
export interface StartPosition {
  lsn?: string;
  log?: string;
  position?: number;
  gtid?: string;
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
  },
});

const perTableSchema = obj({
  catalog: str({ nonEmpty: true }),
  schema: str({ nonEmpty: true }),
  tables: mapOf(tableSchema, { required: true }),
});

const snapshotSchema = obj({
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
    "fetch-PK": "",
    "fetch-UK": "",
    "fetch-FK": "",
    "fetch-Indexes": "",
    "fetch-user-roles": "",
    "fetch-schemas-from-system-tables": "",
    "allow-table-extraction-overlap": "",
    "computed-columns": "",
    "fetch-create-sql": "",
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
  "column-name": str({ nonEmpty: true, default: "timestamp" }),
  "interval-ms": int({ min: 1, default: 10_000 }),
});

const startPositionSchema = obj({
  lsn: str({ pattern: LSN, patternMessage: "must be a PostgreSQL LSN such as 0/1528A70" }),
  log: str({ nonEmpty: true }),
  position: int({ min: 0 }),
  gtid: str({ nonEmpty: true }),
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
  },
  misplaced: { "min-job-size-rows": "under `snapshot`", "split-key": "under `snapshot`" },
});

const extractorSchema = obj({
  snapshot: snapshotSchema,
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

type ExtractorOut = ObjectOf<{ snapshot: typeof snapshotSchema; realtime: typeof realtimeSchema }>;

function checkStartPosition(out: ExtractorOut, sourceType: SourceType, c: Checker): void {
  const start = out.realtime.startPosition;
  if (!start) return;
  const at = (key: string) => ["realtime", "start-position", key];
  if (sourceType === "POSTGRESQL") {
    for (const key of ["log", "position", "gtid"] as const) {
      if (start[key] !== undefined) {
        c.problem(at(key), "applies to MySQL/MariaDB sources; PostgreSQL starts at an `lsn`");
      }
    }
    if (start.lsn === undefined) c.problem(at("lsn"), "required for a PostgreSQL source");
    return;
  }
  if (start.lsn !== undefined) {
    c.problem(
      at("lsn"),
      "applies to PostgreSQL sources; MySQL/MariaDB start at `log` and `position`, or `gtid`",
    );
  }
  if (start.log !== undefined && start.position === undefined) {
    c.problem(at("position"), "required with `log`");
  }
  if (start.position !== undefined && start.log === undefined) {
    c.problem(at("log"), "required with `position`");
  }
  if (start.gtid !== undefined && start.log !== undefined) {
    c.problem(at("gtid"), "give either `gtid` or `log` and `position`, not both");
  }
  if (start.log === undefined && start.position === undefined && start.gtid === undefined) {
    c.problem(["realtime", "start-position"], "needs `log` and `position`, or `gtid`");
  }
}

function toExtractor(out: ExtractorOut): Omit<ExtractorConfig, keyof Loaded> {
  return {
    snapshot: out.snapshot,
    realtime: {
      threads: out.realtime.threads,
      fetchSizeRows: out.realtime.fetchSizeRows,
      heartbeat: out.realtime.heartbeat,
      ...(out.realtime.startPosition ? { startPosition: out.realtime.startPosition } : {}),
      ddlReplication: out.realtime.ddlReplication,
    },
  };
}

/** Reads an extractor file (conf/src/*.yaml) for a source of the given type. */
export function loadExtractor(
  path: string,
  sourceType: SourceType,
  options: LoadOptions = {},
): ExtractorConfig {
  const doc = readYaml(path, options.env);
  const checker = new Checker(doc.rawScalars);
  const out = check(extractorSchema, doc.data, [], checker);
  if (out === INVALID) failLoad(path, doc.problems, checker);
  checkStartPosition(out, sourceType, checker);
  return finishLoad(path, doc.problems, checker, toExtractor(out));
}

/** The settings used when no extractor file is given. */
export function defaultExtractor(): ExtractorConfig {
  const checker = new Checker();
  const out = check(extractorSchema, {}, [], checker);
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
