import type { TableId } from "../core/table_schema.ts";
import { ConfigError } from "./config_error.ts";
import type { ExtractorConfig } from "./load_extractor.ts";
import type { FilterConfig } from "./load_filter.ts";

/**
 * The MySQL/MariaDB heartbeat table of the extractor's settings (null when off, or for
 * PostgreSQL, which needs none): its database is `catalog`, else the filter's only one.
 */
export function heartbeatTableFor(
  extractor: ExtractorConfig,
  filter: FilterConfig | null,
  sourceType: string,
): TableId | null {
  const hb = extractor.realtime.heartbeat;
  if (!hb.enable || sourceType === "POSTGRESQL") return null;
  const catalogs = [...new Set((filter?.entries ?? []).map((e) => e.catalog))];
  const catalog = hb.catalog ??
    (catalogs.length === 1 && catalogs[0] !== undefined && !/[*?]/.test(catalogs[0])
      ? catalogs[0]
      : undefined);
  if (catalog === undefined) {
    throw new ConfigError([{
      file: extractor.file ?? "extractor",
      key: "realtime.heartbeat.catalog",
      message: "required with `enable: true`: the database of the heartbeat table (the filter " +
        "does not name exactly one database)",
    }]);
  }
  return { catalog, schema: null, table: hb.tableName };
}
