import assert from "node:assert/strict";
import { type ConfigProblem, defaultApplier, loadApplier } from "../../src/config/mod.ts";
import { problemAt, problemsOf, writeConfig } from "./write_config.ts";

const load = (text: string) => loadApplier(writeConfig("applier.yaml", text));
const problems = (text: string) => {
  const path = writeConfig("applier.yaml", text);
  const found = problemsOf(() => loadApplier(path));
  for (const p of found) assert.equal(p.file, path);
  return found;
};
const keys = (list: readonly ConfigProblem[]) => list.map((p) => p.key);

Deno.test("Arcion's Redis Streams applier samples", () => {
  const config = load(`
snapshot:
  threads: 32
  batch-size-rows: 10_000
  txn-size-rows: 10_000
  log-row-level-errors: true

realtime:
  threads: 16
  replay-consistency: GLOBAL
  txn-size-rows: 10_000
  batch-size-rows: 10_000
  split-stream: false
`);
  assert.deepEqual(config.snapshot, {
    threads: 32,
    batchSizeRows: 10_000,
    txnSizeRows: 10_000,
    logRowLevelErrors: true,
    maxRetries: 10,
    retryWaitDurationMs: 1000,
    skipTablesOnFailures: true,
  });
  assert.equal(config.realtime.threads, 16);
  assert.equal(config.realtime.replayConsistency, "GLOBAL");
  assert.equal(config.streams.splitStream, false);
  assert.deepEqual(config.warnings, []);
});

Deno.test("applier defaults", () => {
  const { warnings: _w, ...defaults } = defaultApplier();
  assert.deepEqual(defaults, {
    snapshot: {
      threads: 8,
      batchSizeRows: 10_000,
      txnSizeRows: 10_000,
      logRowLevelErrors: false,
      maxRetries: 10,
      retryWaitDurationMs: 1000,
      skipTablesOnFailures: true,
    },
    realtime: {
      threads: 8,
      replayConsistency: "EVENTUAL",
      batchSizeRows: 10_000,
      txnSizeRows: 10_000,
      maxRetries: 10,
      retryWaitDurationMs: 1000,
      skipTablesOnFailures: true,
    },
    streams: {
      splitStream: true,
      objectNameConcatDelimiter: "UNDERSCORE",
      messageFormat: "compact",
      includeSchema: true,
      tombstones: true,
      keylessTableKey: "all-columns",
      sourceInfo: "debezium",
    },
  });
  const { file: _f, warnings: _w2, ...empty } = load("");
  assert.deepEqual(empty, defaults);
});

Deno.test("stream options at the top level or in a section; enums ignore case", () => {
  const config = load(`
object-name-concat-delimiter: dot
message-format: FIELDS
max-stream-length: 100_000
snapshot:
  include-schema: false
realtime:
  tombstones: false
  replay-consistency: eventual
`);
  assert.deepEqual(config.streams, {
    splitStream: true,
    objectNameConcatDelimiter: "DOT",
    messageFormat: "fields",
    includeSchema: false,
    tombstones: false,
    maxStreamLength: 100_000,
    keylessTableKey: "all-columns",
    sourceInfo: "debezium",
  });
  assert.equal(config.realtime.replayConsistency, "EVENTUAL");
});

Deno.test("a stream option set differently in two places is a problem", () => {
  const found = problems("message-format: compact\nrealtime:\n  message-format: extended\n");
  assert.equal(
    problemAt(found, "realtime.message-format").message,
    "conflicts with `message-format: compact`; streams use one setting for both snapshot and realtime",
  );
  // The same value twice is fine.
  assert.equal(
    load("tombstones: false\nsnapshot:\n  tombstones: false\n").streams.tombstones,
    false,
  );
});

Deno.test("bad replay-consistency and message-format", () => {
  const found = problems("realtime:\n  replay-consistency: STRONG\nmessage-format: json\n");
  assert.equal(
    problemAt(found, "realtime.replay-consistency").message,
    'must be one of GLOBAL, EVENTUAL, got "STRONG"',
  );
  assert.equal(
    problemAt(found, "message-format").message,
    'must be one of compact, extended, fields, got "json"',
  );
  const typo = problems("object-name-concat-delimiter: UNDERSCOR\n");
  assert.match(
    problemAt(typo, "object-name-concat-delimiter").message,
    /did you mean `UNDERSCORE`\?$/,
  );
});

Deno.test("txn-size-rows follows batch-size-rows when not given, and may not be smaller", () => {
  assert.equal(load("snapshot:\n  batch-size-rows: 50_000\n").snapshot.txnSizeRows, 50_000);
  assert.equal(load("snapshot:\n  batch-size-rows: 500\n").snapshot.txnSizeRows, 10_000);
  const found = problems("realtime:\n  batch-size-rows: 1000\n  txn-size-rows: 10\n");
  assert.match(
    problemAt(found, "realtime.txn-size-rows").message,
    /must be at least batch-size-rows \(1000\)/,
  );
});

Deno.test("counts and booleans are checked, all problems at once", () => {
  const found = problems(`
snapshot:
  threads: 0
  batch-size-rows: -5
  max-retries: 1.5
  skip-tables-on-failures: "no"
  log-row-level-errors: maybe
realtime:
  threads: two
  retry-wait-duration-ms: -1
max-stream-length: 0
include-schema: 1
`);
  assert.deepEqual(keys(found), [
    "snapshot.threads",
    "snapshot.batch-size-rows",
    "snapshot.max-retries",
    "snapshot.skip-tables-on-failures",
    "snapshot.log-row-level-errors",
    "realtime.threads",
    "realtime.retry-wait-duration-ms",
    "include-schema",
    "max-stream-length",
  ]);
});

Deno.test("replay-consistency in the snapshot section is unknown there", () => {
  const found = problems("snapshot:\n  replay-consistency: GLOBAL\n");
  assert.equal(
    problemAt(found, "snapshot.replay-consistency").message,
    "not valid here; it belongs under `realtime`",
  );
  const top = problems("threads: 4\n");
  assert.equal(
    problemAt(top, "threads").message,
    "not valid here; it belongs under `snapshot` or `realtime`",
  );
});

Deno.test("Arcion applier keys Replicant does not use are warnings", () => {
  const config = load(`
snapshot:
  bulk-load:
    enable: true
  handle-failed-opers: true
realtime:
  retry-transactions: true
  cdc-metadata-type: NONE
`);
  assert.deepEqual(config.warnings.map((w) => w.key), [
    "snapshot.bulk-load",
    "snapshot.handle-failed-opers",
    "realtime.retry-transactions",
    "realtime.cdc-metadata-type",
  ]);
});

Deno.test("wait-for-replicas and its timeout", () => {
  const config = load("realtime:\n  wait-for-replicas: 1\nwait-for-replicas-timeout-ms: 250\n");
  assert.equal(config.streams.waitForReplicas, 1);
  assert.equal(config.streams.waitForReplicasTimeoutMs, 250);
  assert.equal(load("").streams.waitForReplicas, undefined);
  const found = problems("wait-for-replicas: -1\nsnapshot:\n  wait-for-replicas-timeout-ms: 0\n");
  assert.deepEqual(keys(found), ["snapshot.wait-for-replicas-timeout-ms", "wait-for-replicas"]);
  assert.equal(
    problemAt(found, "wait-for-replicas").message,
    "must be an integer of at least 0, got -1",
  );
  const alone = problems("realtime:\n  wait-for-replicas-timeout-ms: 500\n");
  assert.equal(
    problemAt(alone, "realtime.wait-for-replicas-timeout-ms").message,
    "has no effect without `wait-for-replicas: N` (N ≥ 1 replicas to wait for)",
  );
});

Deno.test("retention: absent by default, defaults when the section is given", () => {
  assert.equal(defaultApplier().retention, undefined);
  assert.equal(load("snapshot:\n  threads: 2\n").retention, undefined);
  // An empty `retention:` is Arcion's way of saying "defaults": here, no retention.
  assert.equal(load("retention:\n").retention, undefined);
  assert.deepEqual(load("retention:\n  enable: true\n").retention, {
    intervalMs: 10_000,
    minLength: 0,
    minAgeMs: 0,
    snapshotStreams: true,
  });
  assert.deepEqual(
    load(
      "retention:\n  interval-ms: 500\n  min-length: 1_000\n  min-age-ms: 60_000\n" +
        "  max-length: 1_000_000\n  snapshot-streams: false\n",
    ).retention,
    {
      intervalMs: 500,
      minLength: 1000,
      minAgeMs: 60_000,
      maxLength: 1_000_000,
      snapshotStreams: false,
    },
  );
  assert.equal(load("retention:\n  enable: false\n  max-length: 100\n").retention, undefined);
});

Deno.test("retention: bad keys and values name the file, the key and the nearest key", () => {
  const found = problems(
    "retention:\n  max-lenght: 100\n  interval-ms: 10\n  min-age-ms: -1\n",
  );
  assert.deepEqual(keys(found).sort(), [
    "retention.interval-ms",
    "retention.max-lenght",
    "retention.min-age-ms",
  ]);
  assert.match(problemAt(found, "retention.max-lenght").message, /did you mean `max-length`\?$/);
  assert.equal(
    problemAt(found, "retention.interval-ms").message,
    "must be an integer of at least 100, got 10",
  );
  assert.equal(
    problemAt(problems("retention:\n  max-length: 10\n"), "retention.max-length").message,
    "must be an integer of at least 16, got 10",
  );
  assert.equal(
    problemAt(
      problems("retention:\n  min-length: 500\n  max-length: 100\n"),
      "retention.min-length",
    )
      .message,
    "must not exceed max-length (100): the hard cap wins over the minimum",
  );
  assert.equal(
    problemAt(problems("realtime:\n  retention:\n    max-length: 100\n"), "realtime.retention")
      .message,
    "not valid here; it belongs at the top level of the applier file",
  );
});
