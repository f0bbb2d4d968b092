import type { MysqlConnection } from "../../config/load_connection.ts";
import { type FilterConfig, loadFilter } from "../../config/load_filter.ts";
import { loadExtractor } from "../../config/load_extractor.ts";
import { failed, passed, statusOf } from "../../core/prerequisite_check.ts";
import { heartbeatTableFor } from "../../config/heartbeat_table.ts";
import type { StreamNaming } from "../../core/stream_naming.ts";
import type { TableSchema } from "../../core/table_schema.ts";
import { REALTIME_CHECKPOINT_FIELD, SKIP_THROUGH_FIELD_PREFIX } from "../../ports/checkpoint.ts";
import {
  type ConnectionTest,
  type ConnectionTestOutcome,
  type Handoff,
  type JoinSnapshot,
  neutralSchema,
  type OpenedStream,
  type PreflightRun,
  type RunMode,
  type SourceConnector,
  type SourceInspection,
  type SourcePreflight,
  type SourceTables,
  type StreamRun,
} from "../../ports/connector.ts";
import { StartTimeGate } from "../start_time_gate.ts";
import { MysqlBinlogSource } from "./mysql_binlog_source.ts";
import { resolveMysqlStart } from "./mysql_start_position.ts";
import {
  selectionWithout,
  type SnapshotSource,
  type TableSelection,
  tableSelectionOf,
} from "../../ports/snapshot_source.ts";
import type { VerifyPoint } from "../../ports/verify_point.ts";
import {
  type MysqlEndpoint,
  mysqlEndpointOf,
  mysqlQueryError,
  openMysql,
} from "./mysql_endpoint.ts";
import { mysqlServerIdentity } from "./mysql_binlog_gap.ts";
import { mysqlPreflight } from "./mysql_preflight.ts";
import { cascadeMessage, checkMysqlSource } from "./mysql_prerequisites.ts";
import { MysqlLagSampler } from "./mysql_lag_sampler.ts";
import {
  compareCoordinates,
  formatCheckpoint,
  MYSQL_POSITION_FIELDS,
  mysqlSortKeyOfSource,
  parseCheckpoint,
  snapshotSkipThrough,
} from "./mysql_position.ts";
import { listMysqlDatabases, readMysqlTables } from "./mysql_schema_reader.ts";
import { MysqlSnapshotSource } from "./mysql_snapshot_source.ts";
import { openMysqlVerifyPoint } from "./mysql_verify_point.ts";

/** MySQL and MariaDB: snapshots per reader with their binlog position, changes from the binlog. */
export class MysqlConnector implements SourceConnector {
  readonly name = "mysql";
  readonly positionFields = MYSQL_POSITION_FIELDS;
  readonly sortKeyOfSource = mysqlSortKeyOfSource;
  readonly endpoint: MysqlEndpoint;

  /** `ids`: the replication the connector works for (its id goes in the heartbeat rows). */
  constructor(readonly conn: MysqlConnection, readonly ids?: { group: string; id: string }) {
    this.endpoint = mysqlEndpointOf(conn);
  }

  openSnapshot(selection: TableSelection): Promise<MysqlSnapshotSource & SnapshotSource> {
    return MysqlSnapshotSource.open(this.endpoint, selection);
  }

  openVerifyPoint(selection: TableSelection): Promise<VerifyPoint> {
    return openMysqlVerifyPoint(this.endpoint, selection);
  }

  async readSchemas(selection: TableSelection): Promise<TableSchema[]> {
    const conn = await openMysql(this.endpoint);
    try {
      return (await readMysqlTables(conn, selection)).map(neutralSchema);
    } finally {
      conn.destroy();
    }
  }

  async listTables(): Promise<SourceTables> {
    const { type, host, port } = this.conn;
    const conn = await openMysql(this.endpoint);
    try {
      const databases = await listMysqlDatabases(conn);
      return {
        source: `${type === "MARIADB" ? "MariaDB" : "MySQL"} at ${host}:${port}`,
        groupKind: "database",
        groups: databases.map(({ database, tables }) => ({
          name: database,
          tables: tables.map((table) => ({ catalog: database, schema: null, table })),
        })),
      };
    } finally {
      conn.destroy();
    }
  }

  lagSampler(checkpoint: () => Promise<string | null>): MysqlLagSampler {
    return new MysqlLagSampler(this.endpoint, checkpoint);
  }

  /**
   * Every reader has its own consistent snapshot and binlog position: realtime starts at the
   * lowest, and each table's stream skips what its own snapshot already holds. Each table's
   * position is saved before its first row lands, and never moved later: a resumed snapshot
   * reads at a newer position, but realtime must still start at the oldest, or changes
   * between the two would be lost for rows already written.
   */
  async handoff(run: StreamRun, naming: StreamNaming): Promise<Handoff> {
    const { checkpoints } = run;
    const source = await MysqlSnapshotSource.open(this.endpoint, run.selection);
    let saving = Promise.resolve();
    const tableStarts = (table: TableSchema) => {
      saving = saving.then(async () => {
        const pos = source.tablePositions().get(`${table.id.catalog}.${table.id.table}`);
        if (!pos) return;
        const current = await checkpoints.read();
        const fields: Record<string, string> = {};
        const skipField = SKIP_THROUGH_FIELD_PREFIX + naming.cdcStream(table.id);
        if (current[skipField] === undefined) fields[skipField] = pos.skipThrough;
        const start = current[REALTIME_CHECKPOINT_FIELD];
        if (!start || compareCoordinates(pos, parseCheckpoint(start)) < 0) {
          fields[REALTIME_CHECKPOINT_FIELD] = formatCheckpoint({
            file: pos.file,
            pos: pos.pos,
            gtid: pos.gtid,
          });
        }
        if (Object.keys(fields).length > 0) await checkpoints.write(fields);
      });
      return saving;
    };
    return {
      source,
      resume: run.resume,
      tableStarts,
      completed: async () => `snapshot complete: ${(await source.tables()).length} table(s)`,
      close: () => source.close(),
    };
  }

  /**
   * One reader opens its consistent snapshot now and records its binlog position: the
   * joining tables' changes up to it are in the snapshot, the later ones in the binlog the
   * stream reads (it follows the selection it is opened with).
   */
  async openJoinSnapshot(_run: StreamRun, only: TableSelection): Promise<JoinSnapshot> {
    const source = await MysqlSnapshotSource.open(this.endpoint, only);
    try {
      const at = await source.openFirstReader();
      return {
        source,
        through: snapshotSkipThrough(at),
        point: `${at.file}:${at.pos}${at.gtid ? ` (GTID ${at.gtid})` : ""}`,
        close: () => source.close(),
      };
    } catch (err) {
      await source.close();
      throw err;
    }
  }

  /**
   * Realtime and full also need a usable `slave-server-ids` entry, and say which selected
   * tables foreign keys change by cascade, which the binlog does not carry.
   */
  async inspect(selection: TableSelection, mode: RunMode): Promise<SourceInspection> {
    const found = await mysqlPreflight(this.endpoint, selection);
    const warnings: string[] = [];
    const problems: { key: string; message: string }[] = [];
    if (mode !== "snapshot" && found.cascades.length > 0) {
      warnings.push(cascadeMessage(found.cascades));
    }
    if (mode !== "snapshot" && found.serverIdProblem !== null) {
      problems.push({ key: "slave-server-ids", message: found.serverIdProblem });
    }
    return { tables: found.tables, serverVersion: found.serverVersion, warnings, problems };
  }

  async testConnection(test: ConnectionTest): Promise<ConnectionTestOutcome> {
    const { checks } = test;
    const out: ConnectionTestOutcome = {};
    const client = await test.login(this.conn.username, () => openMysql(this.endpoint));
    if (!client) return out;
    try {
      if (test.systemTables) {
        try {
          await client.query("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE 1 = 0");
          checks.push(passed("system tables", "information_schema readable"));
        } catch (e) {
          checks.push(failed("system tables", (e as Error).message));
        }
        out.readAccessToSystemTables = statusOf(checks.filter((c) => c.name === "system tables"));
      }
      const extractor = test.extractorFile
        ? loadExtractor(test.extractorFile, this.conn.type)
        : null;
      const filter = test.filterFile ? loadFilter(test.filterFile) : null;
      const heartbeat = extractor ? heartbeatTableFor(extractor, filter, this.conn.type) : null;
      const found = await checkMysqlSource(client, this.endpoint, {
        mode: test.cdc ? test.mode : "SNAPSHOT",
        selection: selectionWithout(tableSelectionOf(filter), heartbeat),
        heartbeat: heartbeat && { database: heartbeat.catalog, table: heartbeat.table },
      });
      checks.push(...found);
      if (test.cdc) {
        out.readAccessToCdcLogs = statusOf(found.filter((c) => MYSQL_CDC_CHECKS.has(c.name)));
      }
    } finally {
      client.destroy();
    }
    return out;
  }

  async checkBeforeRun(run: PreflightRun): Promise<SourcePreflight> {
    let tables: TableSchema[];
    let identity: string | null = null;
    const conn = await openMysql(this.endpoint);
    try {
      tables = (await readMysqlTables(conn, run.selection)).map(neutralSchema);
      if (run.mode !== "snapshot") {
        identity = await mysqlServerIdentity(conn, /mariadb/i.test(run.serverVersion));
      }
    } catch (err) {
      throw mysqlQueryError(this.endpoint, "Checking the source before the run", err);
    } finally {
      conn.destroy();
    }
    if (tables.length === 0) await run.noTables();
    return { tables, identity, ownsResources: false };
  }

  /** The binlog needs nothing of the source: there is nothing to drop. */
  forgetOwn(): Promise<string | null> {
    return Promise.resolve(null);
  }

  resourceFields(): Record<string, string> {
    return {};
  }

  /**
   * A new run first saves where it starts (the extractor's start-position, else the end of
   * the binlog now) as its checkpoint: a restart or a `--resume` before the first
   * transaction then continues from there, not from a later end of the binlog. A given
   * start position is checked by the source: the server must still be able to serve it.
   */
  async openStream(run: StreamRun, afterSnapshot = false): Promise<OpenedStream> {
    let given: string | null = null;
    let gateMs: number | null = null;
    const start = run.extractor.realtime.startPosition;
    if (!afterSnapshot && !run.resume && start) {
      const resolved = await resolveMysqlStart(this.endpoint, start);
      given = formatCheckpoint(resolved.coordinate);
      gateMs = resolved.gateMs;
      run.log.info(
        `realtime starts at ${resolved.coordinate.file}:${resolved.coordinate.pos}${
          resolved.coordinate.gtid ? ` (GTID ${resolved.coordinate.gtid})` : ""
        }${gateMs !== null ? `, with the first transaction at or after ${isoTime(gateMs)}` : ""}`,
      );
    }
    const hb = run.extractor.realtime.heartbeat;
    const hbTable = heartbeatTableFor(run.extractor, run.filter, this.conn.type);
    const source = await MysqlBinlogSource.open(this.endpoint, {
      selection: run.selection,
      databases: withCatalogs(literalCatalogs(run.filter), run.catalogs),
      heartbeat: hbTable
        ? {
          database: hbTable.catalog,
          table: hbTable.table,
          column: hb.columnName,
          ...(hb.replicantIdColumnName !== undefined && this.ids
            ? { idColumn: hb.replicantIdColumnName, replicationId: this.ids.id }
            : {}),
          intervalMs: hb.intervalMs,
          create: true,
          // Heartbeat failures must reach the user; recoveries go to the trace log.
          warn: (text) => run.warn(text),
          info: (text) => run.log.info(text),
        }
        : undefined,
      serverIdentity: run.sourceIdentity,
      startPosition: given,
    });
    let resume = run.resume || afterSnapshot;
    try {
      if (!resume) {
        await run.checkpoints.write({
          [REALTIME_CHECKPOINT_FIELD]: given ?? await source.currentPosition(),
        });
        resume = true;
      }
    } catch (err) {
      await source.close();
      throw err;
    }
    return {
      source: gateMs === null ? source : new StartTimeGate(source, gateMs, true),
      resume,
      close: () => source.close(),
    };
  }
}

const isoTime = (ms: number) => new Date(ms).toISOString();

/** The checks that say whether the binlog can be read (Arcion's `readAccessToCdcLogs`). */
const MYSQL_CDC_CHECKS = new Set([
  "log_bin",
  "binlog_format",
  "binlog_row_image",
  "slave-server-ids",
  "replication privileges",
]);

/** The databases of tables added beyond the filter, too (undefined stays: any may match). */
function withCatalogs(names: string[] | undefined, extra: string[] | undefined) {
  if (names === undefined || !extra || extra.length === 0) return names;
  return [...names, ...extra.flatMap((c) => [c, c.toLowerCase()])];
}

/** The filter's databases when each is named literally; undefined when any may match. */
function literalCatalogs(filter: FilterConfig | null): string[] | undefined {
  const entries = filter?.entries;
  if (!entries || entries.length === 0) return undefined;
  const names: string[] = [];
  for (const e of entries) {
    if (!e.catalog || /[*?]/.test(e.catalog)) return undefined;
    // Filter names ignore case; database names on disk may not.
    names.push(e.catalog, e.catalog.toLowerCase());
  }
  return names;
}
