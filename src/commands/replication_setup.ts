import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import {
  type ApplierConfig,
  ConfigError,
  type ConfigProblem,
  defaultApplier,
  defaultExtractor,
  type ExtractorConfig,
  type FilterConfig,
  formatProblem,
  loadApplier,
  loadConnection,
  loadExtractor,
  loadFilter,
  type MysqlConnection,
  type PostgresConnection,
  type RedisConnection,
  selectedColumns,
  tableSelected,
} from "../config/mod.ts";
import type { EntryOptions } from "../core/entry_encoder.ts";
import { UsageError } from "../core/errors.ts";
import { StreamNaming } from "../core/stream_naming.ts";
import type { TableSelection } from "../pipeline/snapshot_source.ts";
import type { RedisTarget } from "../sink/redis/redis_connection.ts";
import type { PgEndpoint } from "../source/postgres/pg_endpoint.ts";
import type { MysqlEndpoint } from "../source/mysql/mysql_endpoint.ts";
import { VERSION } from "../version.ts";
import type { CommonOptions } from "./common_options.ts";
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
}

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

  const problems: ConfigProblem[] = [];
  const attempt = <T>(load: () => T): T | null => {
    try {
      return load();
    } catch (err) {
      if (err instanceof ConfigError) {
        problems.push(...err.problems);
        return null;
      }
      throw err;
    }
  };
  const source = attempt(() => loadConnection(sourceFile!, { role: "source" })) as
    | PostgresConnection
    | MysqlConnection
    | null;
  const target = attempt(() => loadConnection(targetFile, { role: "target" })) as
    | RedisConnection
    | null;
  const extractor = extractorFile
    ? attempt(() => loadExtractor(extractorFile, source?.type ?? "POSTGRESQL"))
    : defaultExtractor();
  const applier = applierFile ? attempt(() => loadApplier(applierFile)) : defaultApplier();
  const filter = filterFile ? attempt(() => loadFilter(filterFile)) : null;
  if (problems.length > 0) throw new ConfigError(problems);
  for (const loaded of [source, target, extractor, applier, filter]) {
    for (const w of loaded?.warnings ?? []) {
      process.stderr.write(`replicant: warning: ${formatProblem(w)}\n`);
    }
  }
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
  };
}

export function tableSelectionOf(filter: FilterConfig | null): TableSelection {
  if (!filter) return { table: () => true, columns: () => null };
  return {
    table: (id) => tableSelected(filter, id),
    columns: (id) => selectedColumns(filter, id),
  };
}

export function pgEndpointOf(conn: PostgresConnection): PgEndpoint {
  return {
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.username,
    password: conn.password,
    ssl: conn.ssl?.enable
      ? {
        rejectUnauthorized: conn.ssl.hostnameVerification,
        ca: readOptional(conn.ssl.rootCert),
        cert: readOptional(conn.ssl.sslCert),
        key: readOptional(conn.ssl.sslKey),
      }
      : undefined,
    origin: conn.file ?? "postgresql connection",
  };
}

export function mysqlEndpointOf(conn: MysqlConnection): MysqlEndpoint {
  return {
    host: conn.host,
    port: conn.port,
    user: conn.username,
    password: conn.password,
    ssl: conn.ssl?.enable
      ? {
        rejectUnauthorized: conn.ssl.hostnameVerification,
        ca: readOptional(conn.ssl.rootCert ?? conn.ssl.trustStore?.path),
        cert: readOptional(conn.ssl.sslCert),
        key: readOptional(conn.ssl.sslKey),
      }
      : undefined,
    serverIds: conn.slaveServerIds,
    origin: conn.file ?? "mysql connection",
  };
}

export function redisTargetOf(conn: RedisConnection): RedisTarget {
  const ssl = conn.ssl;
  let tls: RedisTarget["tls"];
  if (ssl?.enable) {
    for (const store of [ssl.trustStore, ssl.keyStore]) {
      if (store && store.sslStoreType !== "PEM") {
        throw new UsageError(
          `${conn.file}: ssl: ${store.sslStoreType} stores are not supported yet; convert to PEM ` +
            `(openssl pkcs12 -in store.p12 -out store.pem -nodes) and set ssl-store-type: PEM`,
        );
      }
    }
    tls = {
      ca: readOptional(ssl.trustStore?.path),
      cert: readOptional(ssl.keyStore?.path),
      key: readOptional(ssl.keyStore?.path),
      servername: ssl.hostnameVerification ? conn.host : undefined,
      checkServerIdentity: ssl.hostnameVerification ? undefined : () => undefined,
    };
  }
  return {
    host: conn.host,
    port: conn.port,
    username: conn.username,
    password: conn.password,
    poolSize: conn.maxConnections,
    tls,
    origin: conn.file ?? "redis connection",
  };
}

export function namingOf(setup: ReplicationSetup): StreamNaming {
  const s = setup.applier.streams;
  return new StreamNaming(setup.id, setup.group, s.objectNameConcatDelimiter, s.splitStream);
}

export function entryOptionsOf(setup: ReplicationSetup): EntryOptions {
  const s = setup.applier.streams;
  return {
    format: s.messageFormat,
    includeSchema: s.includeSchema,
    tombstones: s.tombstones,
    connector: setup.source.type === "POSTGRESQL" ? "postgresql" : "mysql",
    replicationId: setup.id,
    version: VERSION,
  };
}

function readOptional(path: string | undefined): string | undefined {
  if (!path) return undefined;
  if (!existsSync(path)) throw new UsageError(`TLS file not found: ${path}`);
  return readFileSync(path, "utf8");
}
