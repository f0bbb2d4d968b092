import assert from "node:assert/strict";
import {
  type ConfigProblem,
  defaultExtractor,
  loadExtractor,
  type SourceType,
  tableExtractorConfig,
} from "../../src/config/mod.ts";
import { problemAt, problemsOf, writeConfig } from "./write_config.ts";

const load = (text: string, type: SourceType = "POSTGRESQL") =>
  loadExtractor(writeConfig("extractor.yaml", text), type);
const problems = (text: string, type: SourceType = "POSTGRESQL") => {
  const path = writeConfig("extractor.yaml", text);
  const found = problemsOf(() => loadExtractor(path, type));
  for (const p of found) assert.equal(p.file, path);
  return found;
};
const keys = (list: readonly ConfigProblem[]) => list.map((p) => p.key);

Deno.test("Arcion's PostgreSQL extractor sample", () => {
  const config = load(`
snapshot:
  threads: 16
  fetch-size-rows: 5_000

  _traceDBTasks: true
  min-job-size-rows: 1_000_000
  max-jobs-per-chunk: 32

  per-table-config:
  - catalog: tpch
    schema: public
    tables:
      lineitem:
        row-identifier-key: [l_orderkey, l_linenumber]
        split-key: l_orderkey
        split-hints:
          row-count-estimate: 15000

realtime:
  threads: 4
  fetch-size-rows: 10000
  fetch-duration-per-extractor-slot-s: 3
  ddl-replication:
    enable: true
    detect-ddl-interval: 600
  heartbeat:
    enable: true
    catalog: tpch
    schema: public
    interval-ms: 10000
`);
  assert.equal(config.snapshot.threads, 16);
  assert.equal(config.snapshot.fetchSizeRows, 5000);
  assert.equal(config.snapshot.minJobSizeRows, 1_000_000);
  assert.equal(config.snapshot.maxJobsPerChunk, 32);
  assert.deepEqual(config.snapshot.perTableConfig, [
    { catalog: "tpch", schema: "public", tables: { lineitem: { splitKey: "l_orderkey" } } },
  ]);
  assert.equal(config.realtime.threads, 4);
  assert.equal(config.realtime.fetchSizeRows, 10000);
  assert.deepEqual(config.realtime.heartbeat, {
    enable: true,
    catalog: "tpch",
    schema: "public",
    tableName: "replicate_io_cdc_heartbeat",
    columnName: "timestamp",
    intervalMs: 10000,
  });
  assert.deepEqual(config.realtime.ddlReplication, { enable: true });
  assert.deepEqual(keys(config.warnings), [
    "snapshot._traceDBTasks",
    "snapshot.per-table-config[0].tables.lineitem.row-identifier-key",
    "snapshot.per-table-config[0].tables.lineitem.split-hints",
    "realtime.fetch-duration-per-extractor-slot-s",
    "realtime.ddl-replication.detect-ddl-interval",
    // PostgreSQL writes no heartbeat table: only interval-ms is used.
    "realtime.heartbeat.enable",
    "realtime.heartbeat.catalog",
    "realtime.heartbeat.schema",
  ]);
});

Deno.test("an empty extractor file means the defaults", () => {
  const config = load("# defaults\n");
  const { file: _file, warnings, ...settings } = config;
  const { warnings: _w, ...defaults } = defaultExtractor();
  assert.deepEqual(settings, defaults);
  assert.deepEqual(warnings, []);
  assert.deepEqual(defaults, {
    snapshot: {
      threads: 8,
      fetchSizeRows: 5000,
      minJobSizeRows: 1_000_000,
      maxJobsPerChunk: 32,
      perTableConfig: [],
    },
    realtime: {
      threads: 1,
      fetchSizeRows: 10_000,
      heartbeat: {
        enable: false,
        tableName: "replicate_io_cdc_heartbeat",
        columnName: "timestamp",
        intervalMs: 10_000,
      },
      ddlReplication: { enable: false },
    },
  });
});

Deno.test("start positions: PostgreSQL lsn, MySQL log+position or gtid", () => {
  assert.deepEqual(
    load("realtime:\n  start-position:\n    lsn: 0/1528A70\n").realtime.startPosition,
    {
      lsn: "0/1528A70",
    },
  );
  assert.deepEqual(
    load("realtime:\n  start-position:\n    log: binlog.000003\n    position: 4\n", "MYSQL")
      .realtime
      .startPosition,
    { log: "binlog.000003", position: 4 },
  );
  assert.deepEqual(
    load("realtime:\n  start-position:\n    gtid: 0-1-42\n", "MARIADB").realtime.startPosition,
    { gtid: "0-1-42" },
  );
});

Deno.test("zero and negative threads", () => {
  const found = problems("snapshot:\n  threads: 0\nrealtime:\n  threads: -2\n");
  assert.equal(
    problemAt(found, "snapshot.threads").message,
    "must be an integer of at least 1, got 0",
  );
  assert.equal(
    problemAt(found, "realtime.threads").message,
    "must be an integer of at least 1, got -2",
  );
});

Deno.test("non-integer sizes and a wrong type for a section", () => {
  const found = problems(
    "snapshot:\n  fetch-size-rows: 1.5\n  min-job-size-rows: lots\nrealtime: 4\n",
  );
  assert.deepEqual(keys(found), [
    "snapshot.fetch-size-rows",
    "snapshot.min-job-size-rows",
    "realtime",
  ]);
  assert.equal(problemAt(found, "realtime").message, "must be a mapping (key: value), got 4");
});

Deno.test("unknown keys in sections get suggestions", () => {
  const found = problems("snapshot:\n  thread: 4\nrealtime:\n  heartbeat:\n    enabled: true\n");
  assert.equal(problemAt(found, "snapshot.thread").message, "unknown key; did you mean `threads`?");
  assert.equal(
    problemAt(found, "realtime.heartbeat.enabled").message,
    "unknown key; did you mean `enable`?",
  );
});

Deno.test("start position that does not fit the source", () => {
  const pg = problems("realtime:\n  start-position:\n    log: binlog.000001\n    position: 4\n");
  assert.deepEqual(keys(pg), [
    "realtime.start-position.log",
    "realtime.start-position.position",
    "realtime.start-position",
  ]);
  const my = problems("realtime:\n  start-position:\n    lsn: 0/16B3748\n", "MYSQL");
  assert.match(problemAt(my, "realtime.start-position.lsn").message, /applies to PostgreSQL/);
  const half = problems("realtime:\n  start-position:\n    log: binlog.000001\n", "MYSQL");
  assert.equal(problemAt(half, "realtime.start-position.position").message, "required with `log`");
  const badLsn = problems("realtime:\n  start-position:\n    lsn: 12345\n");
  assert.equal(
    problemAt(badLsn, "realtime.start-position.lsn").message,
    "must be a PostgreSQL LSN such as 0/1528A70",
  );
});

Deno.test("booleans in heartbeat and ddl-replication must be booleans", () => {
  const found = problems(
    "realtime:\n  heartbeat:\n    enable: 1\n  ddl-replication:\n    enable: 'true'\n",
  );
  assert.deepEqual(keys(found), ["realtime.heartbeat.enable", "realtime.ddl-replication.enable"]);
});

Deno.test("delta-snapshot is ignored with one warning", () => {
  const config = load("delta-snapshot:\n  threads: 4\n  replicate-deletes: true\n");
  assert.deepEqual(config.warnings.map((w) => [w.key, w.message]), [
    ["delta-snapshot", "ignored: Replicant has no delta-snapshot mode"],
  ]);
});

Deno.test("computed-columns: the warning says what the source does with generated columns", () => {
  const text = "snapshot:\n  computed-columns: UNBLOCK\n";
  const [pg] = load(text, "POSTGRESQL").warnings;
  assert.equal(pg.key, "snapshot.computed-columns");
  assert.match(
    pg.message,
    /^ignored: PostgreSQL's logical replication does not send stored generated/,
  );
  assert.doesNotMatch(pg.message, /replicated as ordinary columns/);
  for (const type of ["MYSQL", "MARIADB"] as const) {
    const [my] = load(text, type).warnings;
    assert.equal(my.key, "snapshot.computed-columns");
    assert.match(my.message, /^ignored: generated columns .*replicated as ordinary columns/, type);
  }
});

Deno.test("per-table-config needs tables", () => {
  const found = problems("snapshot:\n  per-table-config:\n    - catalog: db\n");
  assert.equal(
    problemAt(found, "snapshot.per-table-config[0].tables").message,
    "required key is missing",
  );
});

Deno.test("tableExtractorConfig: per-table split key over the section's", () => {
  const config = load(`
snapshot:
  split-key: id
  max-jobs-per-chunk: 8
  per-table-config:
    - catalog: shop
      schema: public
      tables:
        ORDERS:
          split-key: order_id
        orders:
          split-key: exact_id
          max-jobs-per-chunk: 2
        LINEITEM:
          split-key: l_orderkey
`);
  const ref = { catalog: "shop", schema: "public" };
  assert.deepEqual(tableExtractorConfig(config.snapshot, { ...ref, table: "orders" }), {
    splitKey: "exact_id",
    maxJobsPerChunk: 2,
  });
  assert.deepEqual(tableExtractorConfig(config.snapshot, { ...ref, table: "lineitem" }), {
    splitKey: "l_orderkey",
    maxJobsPerChunk: 8,
  });
  assert.deepEqual(tableExtractorConfig(config.snapshot, { ...ref, table: "other" }), {
    splitKey: "id",
    maxJobsPerChunk: 8,
  });
  assert.deepEqual(
    tableExtractorConfig(config.snapshot, {
      catalog: "elsewhere",
      schema: "public",
      table: "orders",
    }),
    { splitKey: "id", maxJobsPerChunk: 8 },
  );
});

Deno.test("a key in the wrong section says where it belongs", () => {
  const found = problems("threads: 4\nsnapshot:\n  heartbeat:\n    enable: true\n");
  assert.equal(
    problemAt(found, "threads").message,
    "not valid here; it belongs under `snapshot` or `realtime`",
  );
  assert.equal(
    problemAt(found, "snapshot.heartbeat").message,
    "not valid here; it belongs under `realtime`",
  );
});

Deno.test("Arcion's start positions: start-lsn, start-timestamp, rewind with log and position", () => {
  assert.deepEqual(
    load("realtime:\n  start-position:\n    start-lsn: 0/3261270\n").realtime.startPosition,
    { lsn: "0/3261270" },
  );
  assert.deepEqual(
    load("realtime:\n  start-position:\n    start-timestamp: '2023-06-30 10:15: PST'\n")
      .realtime.startPosition,
    { startTimestampMs: Date.UTC(2023, 5, 30, 18, 15) },
  );
  assert.deepEqual(
    load(
      "realtime:\n  start-position:\n    log: mysql-log.000019\n    position: 4436\n" +
        "    rewind-realtime-start-position-m: 30\n",
      "MYSQL",
    ).realtime.startPosition,
    { log: "mysql-log.000019", position: 4436, rewindMinutes: 30 },
  );
  const noZone = problems(
    "realtime:\n  start-position:\n    start-timestamp: '2023-06-30 10:15'\n",
    "MARIADB",
  );
  assert.match(
    problemAt(noZone, "realtime.start-position.start-timestamp").message,
    /add a time zone/,
  );
  const two = problems(
    "realtime:\n  start-position:\n    gtid: 0-1-4\n    start-timestamp: 1700000000000\n",
    "MARIADB",
  );
  assert.match(problemAt(two, "realtime.start-position").message, /give one start/);
  const rewindAlone = problems(
    "realtime:\n  start-position:\n    gtid: 0-1-4\n    rewind-realtime-start-position-m: 5\n",
    "MARIADB",
  );
  assert.match(
    problemAt(rewindAlone, "realtime.start-position.rewind-realtime-start-position-m").message,
    /works with `log` and `position`/,
  );
});

Deno.test("heartbeat: timestamp-column-name is column-name; replicantId-column-name kept", () => {
  const hb = load(
    "realtime:\n  heartbeat:\n    enable: true\n    catalog: tpch\n" +
      "    timestamp-column-name: arcion_replicant_timestamp\n" +
      "    replicantId-column-name: arcion_replicant_id\n",
    "MYSQL",
  ).realtime.heartbeat;
  assert.equal(hb.columnName, "arcion_replicant_timestamp");
  assert.equal(hb.replicantIdColumnName, "arcion_replicant_id");
  const both = problems(
    "realtime:\n  heartbeat:\n    column-name: a\n    timestamp-column-name: b\n",
    "MYSQL",
  );
  assert.deepEqual(keys(both), ["realtime.heartbeat.timestamp-column-name"]);
});

Deno.test("start-timestamp written unquoted (a YAML date) keeps its zone rule", () => {
  assert.deepEqual(
    load("realtime:\n  start-position:\n    start-timestamp: 2023-06-30T10:15:00Z\n", "MYSQL")
      .realtime.startPosition,
    { startTimestampMs: Date.UTC(2023, 5, 30, 10, 15) },
  );
  const noZone = problems(
    "realtime:\n  start-position:\n    start-timestamp: 2023-06-30 10:15:00\n",
    "MYSQL",
  );
  assert.match(problemAt(noZone, "realtime.start-position.start-timestamp").message, /time zone/);
});
