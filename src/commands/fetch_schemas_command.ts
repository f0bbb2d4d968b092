import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  fromOption,
  loadApplier,
  loadFilter,
  type RedisConnection,
  tableSelected,
} from "../config/mod.ts";
import { UsageError } from "../core/errors.ts";
import { osReason } from "../config/read_yaml.ts";
import { StreamNaming } from "../core/stream_naming.ts";
import { qualifiedName } from "../core/table_schema.ts";
import { RunConsole } from "../observe/run_console.ts";
import { logFormatOf } from "../observe/run_observer.ts";
import { openRedisAdmin } from "../sink/redis/redis_connection.ts";
import { dumpColumnsOf, newestPerTable, uniqueKeysOf } from "../schema/schema_dump.ts";
import { readSchemaDump } from "../sink/redis/schema_dump_store.ts";
import { renderSchemasYaml, type SchemasYamlTable } from "../schema/schemas_yaml.ts";
import { connectorOf } from "../source/connectors.ts";
import type { CommonOptions } from "./common_options.ts";
import { homeDir, readManifest } from "./manifest.ts";
import { loadConnectionFile, redisTargetOf, validateId } from "./replication_setup.ts";
import { tableSelectionOf } from "../ports/snapshot_source.ts";

/**
 * `replicant fetch-schemas [CONN]`: with the target connection (or none: the id's manifest)
 * the newest version of each table from the schema dump stream; with a source connection
 * the tables as the database describes them now. Writes schemas.yaml (or --output-file).
 * With `--log-format json`: one `schema` event per table written, then `schemas_written`.
 */
export async function fetchSchemas(conn: string | undefined, opts: CommonOptions): Promise<number> {
  const format = logFormatOf(opts);
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
  const out = new RunConsole(format, id);
  const manifest = readManifest(home, id);
  const group = validateId(
    opts.replicationGroup ?? manifest?.group ?? "default",
    "--replication-group",
  );
  const file = conn ?? manifest?.target;
  if (!file) {
    throw new UsageError(
      `No connection file given and no manifest for id ${JSON.stringify(id)} under ` +
        `${home}/data: give DST_CONN (or a source connection file)`,
    );
  }
  const connection = await loadConnectionFile(
    file,
    undefined,
    out,
    conn ? "CONN" : "CONN (saved by the id's last run)",
  );
  const filter = opts.filter ? fromOption("--filter", () => loadFilter(opts.filter!)) : null;
  const output = resolve(opts.outputFile ?? "schemas.yaml");
  let tables: SchemasYamlTable[];
  let origin: string;
  let from: Record<string, string>;
  if (connection.type === "REDIS_STREAM") {
    const delimiter = manifest?.applier
      ? loadApplier(manifest.applier).streams.objectNameConcatDelimiter
      : "UNDERSCORE";
    const stream = new StreamNaming(id, group, delimiter).schemaDumpStream();
    const target = redisTargetOf(connection as RedisConnection);
    const client = await openRedisAdmin(target, "replicant-fetch-schemas");
    try {
      const entries = await readSchemaDump(client, stream);
      if (entries.length === 0) {
        // The stream and the file are fields of the json `fatal` event too.
        throw Object.assign(
          new UsageError(
            `No schema dump for id ${JSON.stringify(id)}: stream ${stream} on Redis at ` +
              `${target.host}:${target.port} (${file}) is missing or empty. Run snapshot, ` +
              `realtime or full with --id ${id} first, or check --id and --replication-group`,
          ),
          { stream, file },
        );
      }
      tables = newestPerTable(entries)
        .filter((e) => !filter || tableSelected(filter, e.id))
        .map((e) => ({
          id: e.id,
          version: e.version,
          columns: e.columns,
          uniqueKeys: e.uniqueKeys,
        }));
      origin = `stream ${stream}`;
      from = { stream };
    } finally {
      client.disconnect();
    }
  } else {
    const schemas = await connectorOf(connection).readSchemas(tableSelectionOf(filter));
    tables = schemas.map((t) => ({
      id: t.id,
      version: null,
      columns: dumpColumnsOf(t),
      uniqueKeys: uniqueKeysOf(t),
    }));
    origin = `${connection.type} source ${file}`;
    from = { source: file, source_type: connection.type };
  }
  try {
    writeFileSync(output, renderSchemasYaml(tables, origin));
  } catch (err) {
    throw new UsageError(`--output-file ${output}: cannot write the file: ${osReason(err)}`);
  }
  for (const t of tables) {
    out.result({
      level: "info",
      event: "schema",
      fields: {
        table: qualifiedName(t.id),
        version: t.version,
        columns: t.columns.map((c) => c.name),
        primary_key: t.columns.filter((c) => c.primary_key_position !== null)
          .sort((a, b) => a.primary_key_position! - b.primary_key_position!).map((c) => c.name),
        unique_keys: t.uniqueKeys,
        file: output,
      },
    });
  }
  out.result(
    {
      level: "info",
      event: "schemas_written",
      fields: { tables: tables.length, file: output, ...from },
    },
    `Wrote ${tables.length} table(s) to ${output}`,
  );
  return 0;
}
