import { resolve } from "node:path";
import process from "node:process";
import {
  type ApplierConfig,
  ConfigError,
  type ConfigProblem,
  type Connection,
  defaultApplier,
  defaultExtractor,
  type ExtractorConfig,
  type FilterConfig,
  formatProblem,
  fromOption,
  loadApplier,
  loadConnection,
  loadExtractor,
  loadFilter,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
} from "../config/mod.ts";
import { loadConnectionWithSecrets } from "../config/aws_secrets.ts";
import { tlsMaterialOf, tlsOptionsOf } from "../config/tls_material.ts";
import { heartbeatTableFor } from "../config/heartbeat_table.ts";
import { connectorOf } from "../source/connectors.ts";
import type { EntryOptions } from "../core/entry_encoder.ts";
import type { TableId } from "../core/table_schema.ts";
import { UsageError } from "../core/errors.ts";
import { StreamNaming } from "../core/stream_naming.ts";
import {
  selectionWithout,
  type TableSelection,
  tableSelectionOf,
} from "../ports/snapshot_source.ts";
import type { RedisTarget } from "../sink/redis/redis_endpoint.ts";
import { VERSION } from "../version.ts";
import type { CommonOptions } from "./common_options.ts";
import { jsonLine, type LogEvent } from "../observe/log_event.ts";
import { homeDir, type Manifest, readManifest } from "./manifest.ts";

/** Everything a replication mode needs, resolved and validated before any connection. */
export interface ReplicationSetup {
  home: string;
  id: string;
  group: string;
  files: {
    source: string;
    target: string;
    extractor: string | null;
    applier: string | null;
    filter: string | null;
  };
  source: PostgresConnection | MysqlConnection;
  target: RedisConnection;
  extractor: ExtractorConfig;
  applier: ApplierConfig;
  filter: FilterConfig | null;
  manifest: Manifest | null;
  /** The source server's version, once known (`source.version` with `source-info: arcion`). */
  sourceServerVersion?: string;
  /** The option or argument that named each file, for messages (`--filter`, `SRC_CONN`). */
  options: FileOptions;
  /**
   * Tables a reinitialize file added to the filter's selection, or removed from it (kept in
   * the id's checkpoint, set once it is read).
   */
  overrides?: SelectionOverrides;
}

export interface SelectionOverrides {
  add: TableId[];
  remove: TableId[];
}

/** Same table, names compared as the filter compares them (ignoring case). */
export function sameTable(a: TableId, b: TableId): boolean {
  const eq = (x: string | null, y: string | null) =>
    (x ?? "").toLowerCase() === (y ?? "").toLowerCase();
  return eq(a.catalog, b.catalog) && eq(a.schema, b.schema) && eq(a.table, b.table);
}

export type FileOptions = Record<keyof ReplicationSetup["files"], string>;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function validateId(id: string, what = "--id"): string {
  if (!ID_PATTERN.test(id)) {
    throw new UsageError(
      `${what} ${
        JSON.stringify(id)
      } is not valid: use letters, digits, '_', '.', '-' (at most 100)`,
    );
  }
  return id;
}

/**
 * Finds the files (positional, --source, or the id's manifest) and loads them all, so every
 * configuration problem of every file is reported at once (exit 2).
 */
export function resolveReplication(conns: string[], opts: CommonOptions): ReplicationSetup {
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
  const group = validateId(opts.replicationGroup ?? "default", "--replication-group");
  const manifest = readManifest(home, id);
  let sourceFile: string | undefined;
  let targetFile: string;
  if (conns.length === 2) [sourceFile, targetFile] = conns;
  else if (conns.length === 1) {
    targetFile = conns[0];
    sourceFile = opts.source ?? manifest?.source ?? undefined;
    if (!sourceFile) {
      throw new UsageError(
        `Only one connection file given (${targetFile}), and no source connection was found: ` +
          `give SRC_CONN DST_CONN, or --source FILE, or an --id whose manifest names the source ` +
          `(none for id ${JSON.stringify(id)} under ${home}/data)`,
      );
    }
  } else {
    throw new UsageError(
      `Expected SRC_CONN DST_CONN (or DST_CONN alone), got ${conns.length} files`,
    );
  }
  // On --resume the files of the earlier run are the default.
  const fromManifest = opts.resume ? manifest : null;
  const extractorFile = opts.extractor ?? fromManifest?.extractor ?? null;
  const applierFile = opts.applier ?? fromManifest?.applier ?? null;
  const filterFile = opts.filter ?? fromManifest?.filter ?? null;
  const saved = "(saved by the id's last run)";
  const options: FileOptions = {
    source: conns.length === 2 ? "SRC_CONN" : opts.source ? "--source" : `--source ${saved}`,
    target: "DST_CONN",
    extractor: opts.extractor ? "--extractor" : `--extractor ${saved}`,
    applier: opts.applier ? "--applier" : `--applier ${saved}`,
    filter: opts.filter ? "--filter" : `--filter ${saved}`,
  };

  const problems: ConfigProblem[] = [];
  const attempt = <T>(option: string, load: () => T): T | null => {
    try {
      return fromOption(option, load);
    } catch (err) {
      if (err instanceof ConfigError) {
        problems.push(...err.problems);
        return null;
      }
      throw err;
    }
  };
  const source = attempt(options.source, () => loadConnection(sourceFile!, { role: "source" })) as
    | PostgresConnection
    | MysqlConnection
    | null;
  const target = attempt(options.target, () => loadConnection(targetFile, { role: "target" })) as
    | RedisConnection
    | null;
  const extractor = extractorFile
    ? attempt(options.extractor, () => loadExtractor(extractorFile, source?.type ?? "POSTGRESQL"))
    : defaultExtractor();
  const applier = applierFile
    ? attempt(options.applier, () => loadApplier(applierFile))
    : defaultApplier();
  const filter = filterFile ? attempt(options.filter, () => loadFilter(filterFile)) : null;
  // Unreadable stores and wrong store passwords are configuration problems too.
  // (A store password from Secrets Manager is checked by resolveSecrets.)
  for (const [conn, option] of [[source, options.source], [target, options.target]] as const) {
    const pending = conn?.secretRefs.some((r) => !r.resolved && r.key.startsWith("ssl."));
    if (conn?.ssl?.enable && !pending) {
      attempt(option, () => tlsMaterialOf(conn.ssl!, conn.file ?? conn.type));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  printWarnings([source, target, extractor, applier, filter], opts.logFormat, id);
  return {
    home,
    id,
    group,
    // Absolute, so the manifest works from any folder on --resume.
    files: {
      source: resolve(sourceFile!),
      target: resolve(targetFile),
      extractor: extractorFile && resolve(extractorFile),
      applier: applierFile && resolve(applierFile),
      filter: filterFile && resolve(filterFile),
    },
    source: source!,
    target: target!,
    extractor: extractor!,
    applier: applier!,
    filter,
    manifest,
    options,
  };
}

/**
 * Writes the warnings of loaded files (ignored keys, loose password files) to stderr; with
 * `--log-format json` as `config_warning` events carrying the file and key.
 */
function printWarnings(
  loaded: readonly ({ warnings: readonly ConfigProblem[] } | null)[],
  format?: string,
  id?: string,
): void {
  for (const file of loaded) {
    for (const w of file?.warnings ?? []) {
      process.stderr.write(
        format === "json"
          ? jsonLine(configWarningEvent(w), id)
          : `replicant: warning: ${formatProblem(w)}\n`,
      );
    }
  }
}

export function configWarningEvent(w: ConfigProblem): LogEvent {
  return {
    level: "warn",
    event: "config_warning",
    fields: { msg: formatProblem(w), file: w.file, key: w.key },
  };
}

/**
 * Credentials of a loaded connection, the same way for every command: `${ENV}` and
 * `password-file` are applied by loadConnection; when the file has `arcion-sm://` values they
 * are fetched from AWS Secrets Manager and the file is loaded again with them, and its TLS
 * stores (whose passwords may be among them) are read. Problems are ConfigErrors naming the
 * file and key; a connection without secrets is returned as is.
 */
export async function resolveConnectionSecrets<T extends Connection>(
  conn: T,
  role?: "source" | "target",
): Promise<T> {
  if (conn.secretRefs.every((r) => r.resolved)) return conn;
  const loaded = await loadConnectionWithSecrets(conn.file ?? "", { role }) as T;
  if (loaded.ssl?.enable) tlsMaterialOf(loaded.ssl, loaded.file ?? loaded.type);
  return loaded;
}

/**
 * One connection file for fetch-schemas, cleanup-indoubt and test-connection: loaded, its
 * warnings printed (in the command's `--log-format`), its secrets resolved as for replicate
 * (resolveConnectionSecrets).
 */
export async function loadConnectionFile(
  file: string,
  role: "source" | "target" | undefined,
  log: { format?: string; id?: string },
  option: string,
): Promise<Connection> {
  return await fromOption(option, async () => {
    const conn = loadConnection(file, { role });
    printWarnings([conn], log.format, log.id);
    return await resolveConnectionSecrets(conn, role);
  });
}

/**
 * Resolves the credentials of the source and target files (resolveConnectionSecrets), both at
 * once, reporting the problems of both together.
 */
export async function resolveSecrets(setup: ReplicationSetup): Promise<ReplicationSetup> {
  const problems: ConfigProblem[] = [];
  const attempt = async <T>(load: () => Promise<T>): Promise<T | null> => {
    try {
      return await load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return null;
    }
  };
  const [source, target] = await Promise.all([
    attempt(() =>
      fromOption(setup.options.source, () => resolveConnectionSecrets(setup.source, "source"))
    ),
    attempt(() =>
      fromOption(setup.options.target, () => resolveConnectionSecrets(setup.target, "target"))
    ),
  ]);
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...setup, source: source!, target: target! };
}

/**
 * The MySQL/MariaDB heartbeat table of a run (`realtime.heartbeat` enabled): in its
 * `catalog`, else in the one database the filter names; null when off or for PostgreSQL
 * (which moves its slot with pg_logical_emit_message instead).
 */
export function heartbeatTableOf(setup: ReplicationSetup): TableId | null {
  return heartbeatTableFor(setup.extractor, setup.filter, setup.source.type);
}

/**
 * The tables and columns a run replicates: the filter's, without the heartbeat table, whose
 * rows are Replicant's own bookkeeping and never replicated.
 */
export function replicationSelectionOf(setup: ReplicationSetup): TableSelection {
  return withOverrides(
    selectionWithout(tableSelectionOf(setup.filter), heartbeatTableOf(setup)),
    setup.overrides,
  );
}

/** A selection with the tables a reinitialize file added and removed. */
export function withOverrides(
  filtered: TableSelection,
  o: SelectionOverrides | undefined,
): TableSelection {
  if (!o || (o.add.length === 0 && o.remove.length === 0)) return filtered;
  const added = (id: TableId) => o.add.some((t) => sameTable(t, id));
  const removed = (id: TableId) => o.remove.some((t) => sameTable(t, id));
  return {
    table: (id) => !removed(id) && (added(id) || filtered.table(id)),
    columns: (id) => filtered.table(id) ? filtered.columns(id) : null,
    named: (id) => added(id) || (filtered.named?.(id) ?? false),
  };
}

export function redisTargetOf(conn: RedisConnection): RedisTarget {
  return {
    host: conn.host,
    port: conn.port,
    username: conn.username,
    password: conn.password,
    poolSize: conn.maxConnections,
    tls: tlsOptionsOf(conn),
    origin: conn.file ?? "redis connection",
    mode: conn.mode,
    nodes: conn.nodes,
  };
}

export function namingOf(setup: ReplicationSetup): StreamNaming {
  const s = setup.applier.streams;
  return new StreamNaming(setup.id, setup.group, s.objectNameConcatDelimiter, s.splitStream);
}

export function entryOptionsOf(setup: ReplicationSetup): EntryOptions {
  const s = setup.applier.streams;
  const arcion = s.sourceInfo === "arcion";
  const connector = connectorOf(setup.source);
  return {
    format: s.messageFormat,
    includeSchema: s.includeSchema,
    tombstones: s.tombstones,
    connector: connector.name,
    positionFields: connector.positionFields,
    ...(arcion ? { connectorName: setup.source.type } : {}),
    replicationId: setup.id,
    version: arcion ? setup.sourceServerVersion ?? VERSION : VERSION,
    keylessKey: s.keylessTableKey,
  };
}
