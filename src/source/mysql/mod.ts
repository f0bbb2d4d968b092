/** MySQL/MariaDB source: snapshot reader, binlog stream (zongji), schema reader, decoders. */
export * from "./mysql_endpoint.ts";
export * from "./mysql_value_decoder.ts";
export * from "./mysql_schema_reader.ts";
export * from "./mysql_position.ts";
export * from "./mysql_snapshot_source.ts";
export * from "./mysql_binlog_source.ts";
