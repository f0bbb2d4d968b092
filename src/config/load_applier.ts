import { failLoad, finishLoad, type Loaded, type LoadOptions } from "./load_config.ts";
import { formatKeyPath } from "./key_path.ts";
import { TAIL_ENTRIES } from "../core/entry_decoder.ts";
import { readYaml } from "./read_yaml.ts";
import { bool, check, Checker, int, INVALID, obj, oneOf } from "./schema.ts";

/** How entries are written to streams (docs/entry-format.md). One set for the whole replication. */
export interface StreamOptions {
  /** Separate `_cdc_logs` streams for realtime changes (EVENTUAL). */
  splitStream: boolean;
  objectNameConcatDelimiter: "UNDERSCORE" | "DOT";
  messageFormat: "compact" | "extended" | "fields";
  includeSchema: boolean;
  tombstones: boolean;
  /** Approximate MAXLEN per stream; absent means unlimited. */
  maxStreamLength?: number;
  /** `WAIT` for this many replicas after each batch; absent (or 0) means no waiting. */
  waitForReplicas?: number;
  /** Timeout of that `WAIT` (default 1000 ms). */
  waitForReplicasTimeoutMs?: number;
  /** Writers pause while Redis uses more than this % of its maxmemory; absent: never. */
  pauseAboveMemoryPercent?: number;
  /** Key of a table without a primary or unique key: its columns, or Arcion's `default`. */
  keylessTableKey: "all-columns" | "default";
  /**
   * `source.connector` and `source.version`: Debezium's (`mysql`, Replicant's version) or
   * Arcion's (`MYSQL`, the source server's version).
   */
  sourceInfo: "debezium" | "arcion";
}

export interface SnapshotApplierConfig {
  threads: number;
  batchSizeRows: number;
  /** At least batchSizeRows. */
  txnSizeRows: number;
  logRowLevelErrors: boolean;
  maxRetries: number;
  retryWaitDurationMs: number;
  skipTablesOnFailures: boolean;
}

export interface RealtimeApplierConfig {
  threads: number;
  replayConsistency: "GLOBAL" | "EVENTUAL";
  batchSizeRows: number;
  txnSizeRows: number;
  maxRetries: number;
  retryWaitDurationMs: number;
  skipTablesOnFailures: boolean;
}

/**
 * The applier's `retention` section: streams trimmed to what every consumer group of each
 * stream has acknowledged, never below `minLength` entries nor entries younger than
 * `minAgeMs`; `maxLength` is a hard cap that trims even unread entries (and reports them).
 */
export interface RetentionOptions {
  /** Milliseconds between two passes over the id's streams. */
  intervalMs: number;
  minLength: number;
  minAgeMs: number;
  /** Hard cap per stream; absent: streams are trimmed by acknowledgements only. */
  maxLength?: number;
  /** Whether the snapshot streams are trimmed too (default true). */
  snapshotStreams: boolean;
}

export interface ApplierConfig extends Loaded {
  snapshot: SnapshotApplierConfig;
  realtime: RealtimeApplierConfig;
  streams: StreamOptions;
  /** Retention of the id's streams; absent (or `enable: false`): streams are never trimmed. */
  retention?: RetentionOptions;
}

// ---------------------------------------------------------------------------------------

export const STREAM_DEFAULTS: Readonly<StreamOptions> = {
  splitStream: true,
  objectNameConcatDelimiter: "UNDERSCORE",
  messageFormat: "compact",
  includeSchema: true,
  tombstones: true,
  keylessTableKey: "all-columns",
  sourceInfo: "debezium",
};

const DEFAULT_BATCH_ROWS = 10_000;

const DEFAULT_TXN_ROWS = 10_000;

// Arcion puts `split-stream` under `realtime` and `object-name-concat-delimiter` in the mapper
// file; users will write these wherever they found them, so any section may hold them.
function streamFields() {
  return {
    "split-stream": bool(),
    "object-name-concat-delimiter": oneOf(["UNDERSCORE", "DOT"]),
    "message-format": oneOf(["compact", "extended", "fields"]),
    "include-schema": bool(),
    tombstones: bool(),
    "max-stream-length": int({ min: 1 }),
    "wait-for-replicas": int({ min: 0 }),
    "wait-for-replicas-timeout-ms": int({ min: 1 }),
    "pause-above-memory-percent": int({ min: 1, max: 100 }),
    "keyless-table-key": oneOf(["all-columns", "default"]),
    "source-info": oneOf(["debezium", "arcion"]),
  };
}

function sectionFields() {
  return {
    threads: int({ min: 1, default: 8 }),
    "batch-size-rows": int({ min: 1, default: DEFAULT_BATCH_ROWS }),
    "txn-size-rows": int({ min: 1 }),
    "max-retries": int({ min: 0, default: 10 }),
    "retry-wait-duration-ms": int({ min: 0, default: 1000 }),
    "skip-tables-on-failures": bool({ default: true }),
    ...streamFields(),
  };
}

const COMMON_IGNORED = {
  "handle-failed-opers": "",
  "use-quoted-identifiers": "",
  "per-table-config": "",
};

const TOP_LEVEL = "at the top level of the applier file";

const retentionSchema = obj({
  enable: bool({ default: true }),
  "interval-ms": int({ min: 100, default: 10_000 }),
  "min-length": int({ min: 0, default: 0 }),
  "min-age-ms": int({ min: 0, default: 0 }),
  // Retention always keeps the entries a resuming run reads: a cap below that is refused.
  "max-length": int({ min: TAIL_ENTRIES }),
  "snapshot-streams": bool({ default: true }),
}, {
  optional: true,
  check: (r, path, c) => {
    if (r.maxLength !== undefined && r.minLength > r.maxLength) {
      c.problem(
        [...path, "min-length"],
        `must not exceed max-length (${r.maxLength}): the hard cap wins over the minimum`,
      );
    }
  },
});

const snapshotSchema = obj({
  ...sectionFields(),
  "log-row-level-errors": bool({ default: false }),
}, {
  misplaced: { "replay-consistency": "under `realtime`", retention: TOP_LEVEL },
  ignored: {
    ...COMMON_IGNORED,
    "bulk-load": "",
    "deferred-delete": "",
    "schema-dictionary": "",
    "user-role": "",
    "init-indexes": "",
    "init-indexes-post-snapshot": "",
    "init-constraint-post-snapshot": "",
    denormalize: "",
    "use-upsert-based-recovery": "",
  },
});

const realtimeSchema = obj({
  ...sectionFields(),
  "replay-consistency": oneOf(["GLOBAL", "EVENTUAL"], { default: "EVENTUAL" }),
}, {
  misplaced: { "log-row-level-errors": "under `snapshot`", retention: TOP_LEVEL },
  ignored: {
    ...COMMON_IGNORED,
    "before-image-format": "",
    "after-image-format": "",
    "retry-transactions": "",
    "retry-failed-txn-idempotently": "",
    "skip-upto-cursors": "",
    "replay-shard-key-update-as-delete-insert": "",
    "replay-replace-as-upsert": "",
    "cdc-metadata-type": "",
  },
});

const applierSchema = obj({
  snapshot: snapshotSchema,
  realtime: realtimeSchema,
  retention: retentionSchema,
  ...streamFields(),
}, {
  misplaced: {
    threads: "under `snapshot` or `realtime`",
    "batch-size-rows": "under `snapshot` or `realtime`",
    "txn-size-rows": "under `snapshot` or `realtime`",
    "max-retries": "under `snapshot` or `realtime`",
    "retry-wait-duration-ms": "under `snapshot` or `realtime`",
    "skip-tables-on-failures": "under `snapshot` or `realtime`",
    "log-row-level-errors": "under `snapshot`",
    "replay-consistency": "under `realtime`",
  },
});

type Section = "snapshot" | "realtime";
type StreamKey = keyof ReturnType<typeof streamFields>;
type StreamOut = Partial<StreamOptions>;

const STREAM_KEYS: Record<StreamKey, keyof StreamOptions> = {
  "split-stream": "splitStream",
  "object-name-concat-delimiter": "objectNameConcatDelimiter",
  "message-format": "messageFormat",
  "include-schema": "includeSchema",
  tombstones: "tombstones",
  "max-stream-length": "maxStreamLength",
  "wait-for-replicas": "waitForReplicas",
  "wait-for-replicas-timeout-ms": "waitForReplicasTimeoutMs",
  "pause-above-memory-percent": "pauseAboveMemoryPercent",
  "keyless-table-key": "keylessTableKey",
  "source-info": "sourceInfo",
};

/** One value per stream option; the same option set differently in two places is a problem. */
function mergeStreams(places: [string[], StreamOut][], c: Checker): StreamOptions {
  const out: StreamOptions = { ...STREAM_DEFAULTS };
  for (const [key, field] of Object.entries(STREAM_KEYS) as [StreamKey, keyof StreamOptions][]) {
    let first: { path: string[]; value: unknown } | undefined;
    for (const [path, values] of places) {
      const value = values[field];
      if (value === undefined) continue;
      if (first === undefined) {
        first = { path, value };
        continue;
      }
      if (first.value !== value) {
        c.problem(
          [...path, key],
          `conflicts with \`${
            formatKeyPath([...first.path, key])
          }: ${first.value}\`; streams use one setting for both snapshot and realtime`,
        );
      }
    }
    if (first !== undefined) (out as unknown as Record<string, unknown>)[field] = first.value;
  }
  if (out.waitForReplicasTimeoutMs !== undefined && !out.waitForReplicas) {
    const at = places.find(([, v]) => v.waitForReplicasTimeoutMs !== undefined)![0];
    c.problem(
      [...at, "wait-for-replicas-timeout-ms"],
      "has no effect without `wait-for-replicas: N` (N ≥ 1 replicas to wait for)",
    );
  }
  return out;
}

function txnRows(
  section: { batchSizeRows: number; txnSizeRows?: number },
  name: Section,
  c: Checker,
): number {
  if (section.txnSizeRows === undefined) return Math.max(DEFAULT_TXN_ROWS, section.batchSizeRows);
  if (section.txnSizeRows < section.batchSizeRows) {
    c.problem(
      [name, "txn-size-rows"],
      `must be at least batch-size-rows (${section.batchSizeRows}): a transaction is made of whole batches`,
    );
  }
  return section.txnSizeRows;
}

function toApplier(out: Parsed, c: Checker): Omit<ApplierConfig, keyof Loaded> {
  const { snapshot: s, realtime: r } = out;
  const streams = mergeStreams([[[], out], [["snapshot"], s], [["realtime"], r]], c);
  return {
    snapshot: {
      threads: s.threads,
      batchSizeRows: s.batchSizeRows,
      txnSizeRows: txnRows(s, "snapshot", c),
      logRowLevelErrors: s.logRowLevelErrors,
      maxRetries: s.maxRetries,
      retryWaitDurationMs: s.retryWaitDurationMs,
      skipTablesOnFailures: s.skipTablesOnFailures,
    },
    realtime: {
      threads: r.threads,
      replayConsistency: r.replayConsistency,
      batchSizeRows: r.batchSizeRows,
      txnSizeRows: txnRows(r, "realtime", c),
      maxRetries: r.maxRetries,
      retryWaitDurationMs: r.retryWaitDurationMs,
      skipTablesOnFailures: r.skipTablesOnFailures,
    },
    streams,
    ...(out.retention?.enable
      ? {
        retention: {
          intervalMs: out.retention.intervalMs,
          minLength: out.retention.minLength,
          minAgeMs: out.retention.minAgeMs,
          ...(out.retention.maxLength !== undefined ? { maxLength: out.retention.maxLength } : {}),
          snapshotStreams: out.retention.snapshotStreams,
        },
      }
      : {}),
  };
}

type Parsed = Exclude<ReturnType<typeof applierSchema.parse>, typeof INVALID>;

/** Reads an applier file (conf/dst/redis_stream.yaml). */
export function loadApplier(path: string, options: LoadOptions = {}): ApplierConfig {
  const doc = readYaml(path, options.env);
  const checker = new Checker(doc.rawScalars);
  const out = check(applierSchema, doc.data, [], checker);
  if (out === INVALID) failLoad(path, doc.problems, checker);
  const applier = toApplier(out, checker);
  return finishLoad(path, doc.problems, checker, applier);
}

/** The settings used when no applier file is given. */
export function defaultApplier(): ApplierConfig {
  const checker = new Checker();
  const out = check(applierSchema, {}, [], checker);
  if (out === INVALID) throw new Error("applier defaults do not validate");
  return { ...toApplier(out, checker), warnings: [] };
}
