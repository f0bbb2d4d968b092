import type { ExtractorConfig } from "../config/load_extractor.ts";
import type { FilterConfig } from "../config/load_filter.ts";
import type { TableColumns } from "../config/table_selected.ts";
import type { Connector as ConnectorName, PositionField } from "../core/entry_encoder.ts";
import type { PrerequisiteCheck } from "../core/prerequisite_check.ts";
import type { StreamNaming } from "../core/stream_naming.ts";
import type { CheckpointStore } from "./checkpoint.ts";
import type { StreamingSource } from "./streaming_source.ts";
import type { TableId, TableSchema } from "../core/table_schema.ts";
import type { SortKeyOfSource } from "./position.ts";
import type { SnapshotSource, TableSelection } from "./snapshot_source.ts";
import type { VerifyPoint } from "./verify_point.ts";

/**
 * Everything Replicant knows of one kind of source database, behind one object: a connector
 * is built from the source's connection file (src/source/connectors.ts maps the file's
 * `type:` to one), and commands and pipelines ask it instead of naming a database.
 */
export interface SourceConnector {
  /** `connector` of the entries it produces. */
  readonly name: ConnectorName;
  /** Schema of the position fields its entries carry in `source`. */
  readonly positionFields: readonly PositionField[];
  /** Sort key of an entry's decoded `source` block (the position codec). */
  readonly sortKeyOfSource: SortKeyOfSource;
  /** A consistent snapshot of the selected tables. */
  openSnapshot(selection: TableSelection, log?: ConnectorLog): Promise<SnapshotSource>;
  /** A consistent read at a position the streams can be cut at (`replicant verify`). */
  openVerifyPoint(selection: TableSelection): Promise<VerifyPoint>;
  /** The selected tables, read from the catalog on a connection of their own. */
  readSchemas(selection: TableSelection): Promise<TableSchema[]>;
  /** Every user table, selected or not. */
  listTables(): Promise<SourceTables>;
  /** Source log bytes not yet confirmed; `checkpoint` reads the checkpoint saved last. */
  lagSampler(checkpoint: () => Promise<string | null>): LagSampler;
  /**
   * The change stream of the replication, from its checkpoint (`run.resume`) or from where a
   * new run starts (the extractor's start-position, else now), which it records first, so a
   * restart before the first transaction continues from there. `afterSnapshot`: `full`'s
   * realtime, from where handoff() made the snapshot.
   */
  openStream(run: StreamRun, afterSnapshot?: boolean): Promise<OpenedStream>;
  /**
   * `full`'s snapshot, taken so that openStream(run, true) afterwards continues exactly
   * where it was taken: no change missed, none twice (what a table's snapshot already holds
   * is marked in the checkpoint for its stream to skip).
   */
  handoff(run: StreamRun, naming: StreamNaming): Promise<Handoff>;
  /**
   * A snapshot of tables that join a streaming id (`only`), taken at one exact position of
   * the log while realtime runs from the checkpoint: their changes through `through` are in
   * it, the later ones come from the change stream. First the source is told the id's
   * selection now (`run.selection`; PostgreSQL: the publication gains and loses tables), so
   * that every change after the point reaches the stream.
   */
  openJoinSnapshot(run: StreamRun, only: TableSelection): Promise<JoinSnapshot>;
  /**
   * The source's checks of a run before anything is created or dropped: the selected tables
   * (read, so the source answers), the server's identity, and that the resources the run
   * will use in the source are free or the id's own.
   */
  checkBeforeRun(run: PreflightRun): Promise<SourcePreflight>;
  /**
   * The first look at the source, before any other check of a run: the selected tables'
   * columns, the server's version, what the user should know (warnings) and settings of
   * the connection file that do not fit (problems, by key).
   */
  inspect(selection: TableSelection, mode: RunMode): Promise<SourceInspection>;
  /**
   * `test-connection` of the source: logs in (through `test.login`), then checks what the
   * validated mode needs, adding each check to `test.checks`.
   */
  testConnection(test: ConnectionTest): Promise<ConnectionTestOutcome>;
  /** `--overwrite`: drops the source resources this id owns; what was dropped, or null. */
  forgetOwn(): Promise<string | null>;
  /** Checkpoint fields that name the source resources a new run of `mode` uses. */
  resourceFields(mode: RunMode): Record<string, string>;
}

export type RunMode = "snapshot" | "realtime" | "full";

export interface PreflightRun {
  mode: RunMode;
  selection: TableSelection;
  /** The run continues the id's state. */
  resume: boolean;
  overwrite: boolean;
  /** The id's checkpoint fields as found. */
  state: Record<string, string>;
  /** The checkpoint key and the connection file, for messages. */
  stateKey: string;
  connectionFile: string;
  serverVersion: string;
  /** The selection matches no table: throws the error that says what the source has. */
  noTables(): Promise<void>;
}

export interface ConnectionTest {
  mode: "SNAPSHOT" | "FULL" | "REALTIME";
  /** Check what reading the change stream needs too. */
  cdc: boolean;
  /** Check that the catalog's system tables are readable. */
  systemTables: boolean;
  selection: TableSelection;
  /** The extractor and filter files given, if any (MySQL: where the heartbeat table is). */
  extractorFile?: string;
  filterFile?: string;
  checks: PrerequisiteCheck[];
  /** Opens a connection as the file's user, adding the `credentials` check; null: refused. */
  login<T>(user: string | undefined, open: () => Promise<T>): Promise<T | null>;
}

/** Status of the groups of checks Arcion's report names (absent: not checked). */
export interface ConnectionTestOutcome {
  readAccessToSystemTables?: string;
  readAccessToCdcLogs?: string;
}

export interface SourceInspection {
  tables: TableColumns[];
  serverVersion: string;
  warnings: string[];
  /** Keys of the connection file whose values do not fit the source. */
  problems: { key: string; message: string }[];
}

export interface SourcePreflight {
  tables: TableSchema[];
  /** The source server's identity (realtime, full); null for a snapshot. */
  identity: string | null;
  /** Resources of this id exist in the source (PostgreSQL: its slot or publication). */
  ownsResources: boolean;
}

export interface Handoff {
  source: SnapshotSource;
  /** The snapshot continues from the streams' tails (false: it starts over). */
  resume: boolean;
  /** Awaited before a table's first row is written (a table's own snapshot position). */
  tableStarts?: (table: TableSchema) => Promise<void>;
  /** What the log says once the snapshot is complete; asked before close(). */
  completed(): Promise<string>;
  close(): Promise<void>;
}

/** A snapshot of joining tables at one position (SourceConnector.openJoinSnapshot). */
export interface JoinSnapshot {
  source: SnapshotSource;
  /** Sort key through which the joining tables' changes are in this snapshot. */
  through: string;
  /** The position in words, for the log. */
  point: string;
  close(): Promise<void>;
}

/** What opening a replication's change stream needs, whatever the source. */
export interface StreamRun {
  selection: TableSelection;
  checkpoints: CheckpointStore;
  /** Continue from the checkpoint; false: a new run. */
  resume: boolean;
  extractor: ExtractorConfig;
  filter: FilterConfig | null;
  /**
   * Catalogs of tables selected beyond the filter (a reinitialize file's `add-tables`): a
   * source that reads only the filter's catalogs reads these too.
   */
  catalogs?: string[];
  /** Server the id's positions belong to (recorded, or reached now); null: unknown. */
  sourceIdentity: string | null;
  log: ConnectorLog;
  /** A warning the user must see, not only the trace log. */
  warn(message: string): void;
}

export interface OpenedStream {
  source: StreamingSource;
  /** Realtime continues from the checkpoint (a new run has just recorded where it starts). */
  resume: boolean;
  close(): Promise<void>;
}

export interface ConnectorLog {
  info(message: string): void;
  warn(message: string): void;
}

export interface LagSampler {
  /** Bytes of the source's log after what the replication confirmed; null when unknown. */
  sample(): Promise<number | null>;
  close(): Promise<void>;
}

/** What a source holds, selected or not: its schemas (PostgreSQL) or databases and their tables. */
export interface SourceTables {
  /** The source in words: `PostgreSQL database "replicant" at 127.0.0.1:5432`. */
  source: string;
  /** `schema` (PostgreSQL) or `database` (MySQL/MariaDB). */
  groupKind: string;
  groups: { name: string; tables: TableId[] }[];
}

/** A table as every source describes it, without what one source reader adds. */
export function neutralSchema(t: TableSchema): TableSchema {
  const { ordinals, totalColumns } = t as { ordinals?: number[]; totalColumns?: number };
  return {
    id: t.id,
    columns: t.columns,
    keyColumns: t.keyColumns,
    hasKey: t.hasKey,
    // The schema dump keeps where each column sits in a binlog row image, so that a resume
    // before a DDL decodes older rows with the version they were written under.
    ...(ordinals && totalColumns !== undefined ? { ordinals, totalColumns } : {}),
  };
}
