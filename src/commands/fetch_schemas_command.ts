import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { loadApplier, loadFilter, type RedisConnection, tableSelected } from "../config/mod.ts";
import { UsageError } from "../core/errors.ts";
import { StreamNaming } from "../core/stream_naming.ts";
import { openRedisAdmin } from "../sink/redis/redis_connection.ts";
import { dumpColumnsOf, newestPerTable, uniqueKeysOf } from "../schema/schema_dump.ts";
import { readSchemaDump } from "../schema/schema_dump_writer.ts";
import { renderSchemasYaml, type SchemasYamlTable } from "../schema/schemas_yaml.ts";
import { readSourceSchemas } from "../schema/source_schemas.ts";
import type { CommonOptions } from "./common_options.ts";
import { homeDir, readManifest } from "./manifest.ts";
import {
  loadConnectionFile,
  redisTargetOf,
  tableSelectionOf,
  validateId,
} from "./replication_setup.ts";

/**
 * `replicant fetch-schemas [CONN]`: with the target connection (or none: the id's manifest)
 * the newest version of each table from the schema dump stream; with a source connection
 * the tables as the database describes them now. Writes schemas.yaml (or --output-file).
 */
export async function fetchSchemas(conn: string | undefined, opts: CommonOptions): Promise<number> {
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
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
  const connection = await loadConnectionFile(file);
  const filter = opts.filter ? loadFilter(opts.filter) : null;
  const output = resolve(opts.outputFile ?? "schemas.yaml");
  let tables: SchemasYamlTable[];
  let origin: string;
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
        throw new UsageError(
          `No schema dump for id ${JSON.stringify(id)}: stream ${stream} on Redis at ` +
            `${target.host}:${target.port} (${file}) is missing or empty. Run snapshot, ` +
            `realtime or full with --id ${id} first, or check --id and --replication-group`,
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
    } finally {
      client.disconnect();
    }
  } else {
    const schemas = await readSourceSchemas(connection, tableSelectionOf(filter));
    tables = schemas.map((t) => ({
      id: t.id,
      version: null,
      columns: dumpColumnsOf(t),
      uniqueKeys: uniqueKeysOf(t),
    }));
    origin = `${connection.type} source ${file}`;
  }
  writeFileSync(output, renderSchemasYaml(tables, origin));
  process.stdout.write(`Wrote ${tables.length} table(s) to ${output}\n`);
  return 0;
}
