/**
 * verifyTables against real Redis streams written by the entry encoder, with a source read
 * from memory: every message format, with and without the schema halves, EVENTUAL change
 * streams, `split-stream: false`, the GLOBAL stream; updates, deletes and tombstones, key
 * changes, TOAST values not sent, truncates, tables without a key, changes past the point,
 * and partitions split again when they are too large.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redisClient } from "../helpers/clients.ts";
import type { ChangeEvent, Op, RowFragments } from "../../src/core/change_event.ts";
import {
  type EntryOptions,
  type MessageFormat,
  TableEntryEncoder,
} from "../../src/core/entry_encoder.ts";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import type { SnapshotTable, TableReader } from "../../src/ports/snapshot_source.ts";
import type { VerifyPoint } from "../../src/ports/verify_point.ts";
import { redisStreamScan } from "../../src/sink/redis/stream_pages.ts";
import {
  type TableVerdict,
  type VerifySettings,
  verifyTables,
} from "../../src/pipeline/table_verifier.ts";
import {
  PG_POSITION_FIELDS,
  pgSortKey,
  pgSortKeyOfSource,
} from "../../src/source/postgres/pgoutput_position.ts";

const UNAVAILABLE = '"__replicant_unavailable_value"';
/** The point: changes with a commit LSN below it are in the source. */
const POINT = 1000n;

function table(catalog: string, name: string, keyed = true): TableSchema {
  return {
    id: { catalog, schema: "s", table: name },
    columns: [
      {
        name: "id",
        sourceType: "int4",
        connectType: "int32",
        nullable: false,
        keyPosition: keyed ? 1 : null,
        defaultValue: null,
      },
      {
        name: "v",
        sourceType: "text",
        connectType: "string",
        nullable: true,
        keyPosition: null,
        defaultValue: null,
      },
      {
        name: "j",
        sourceType: "jsonb",
        connectType: "string",
        nullable: true,
        keyPosition: null,
        defaultValue: null,
      },
    ],
    keyColumns: keyed ? [0] : [0, 1, 2],
    hasKey: keyed,
  };
}

const row = (id: number, v: string, j = `{"a":${id},"b":"x"}`): RowFragments => [
  String(id),
  JSON.stringify(v),
  j,
];

/** The source at the point, per table, as a reader hands it out. */
function pointOf(rows: Map<TableSchema, RowFragments[]>): VerifyPoint {
  const reader: TableReader = {
    async *read(schema: TableSchema) {
      const list = rows.get(schema) ?? [];
      yield JsonRowBatch.fromRows(schema.columns.length, list);
    },
    close: () => Promise.resolve(),
  };
  return {
    source: {
      connector: "postgresql",
      snapshotTsMs: 0,
      tables: () =>
        Promise.resolve([...rows.keys()].map((schema) => ({ schema, estimatedRows: 0 }))),
      reader: () => Promise.resolve(reader),
      close: () => Promise.resolve(),
    },
    reader,
    description: "test point",
    sortKeyOf: pgSortKeyOfSource,
    includes: (k) => k < pgSortKey(POINT, 0),
    reached: () => true,
    close: () => Promise.resolve(),
  };
}

class Writer {
  #lsn = 100n;
  constructor(
    readonly redis: ReturnType<typeof redisClient>,
    readonly options: EntryOptions,
  ) {}

  async snapshot(stream: string, schema: TableSchema, rows: RowFragments[]) {
    const enc = new TableEntryEncoder(schema, this.options);
    for (const r of rows) {
      await this.redis.xadd(stream, "*", ...enc.encodeRead(r, { tsMs: 0, fields: "" }, 0));
    }
  }

  /** One change; `lsn` overrides the next commit position (past the point, say). */
  async change(
    stream: string,
    schema: TableSchema,
    op: Op,
    before: RowFragments | null,
    after: RowFragments | null,
    lsn?: bigint,
  ) {
    const at = lsn ?? (this.#lsn += 10n);
    const event: ChangeEvent = {
      table: schema,
      op,
      before,
      after,
      position: { tsMs: 0, fields: `"lsn":${at},"txId":7,"sequence":0`, sortKey: pgSortKey(at, 0) },
    };
    for (const entry of new TableEntryEncoder(schema, this.options).encode(event, 0)) {
      await this.redis.xadd(stream, "*", ...entry);
    }
  }
}

interface Case {
  format: MessageFormat;
  includeSchema: boolean;
  layout: "eventual" | "single" | "global";
}

/**
 * Writes the streams of three tables and verifies them against the source at the point;
 * `tamper` edits table t's source rows first (by id).
 */
async function runCase(
  c: Case,
  partitionBytes?: number,
  tamper?: (rows: Map<number, RowFragments>) => void,
): Promise<TableVerdict[]> {
  const redis = redisClient();
  const catalog = `tv_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const naming = new StreamNaming("tv", "default", "UNDERSCORE", c.layout !== "single");
  const options: EntryOptions = {
    format: c.format,
    includeSchema: c.includeSchema,
    tombstones: true,
    connector: "postgresql",
    positionFields: PG_POSITION_FIELDS,
    replicationId: "tv",
    version: "test",
  };
  const w = new Writer(redis, options);
  const t = table(catalog, "t");
  const other = table(catalog, "u");
  const keyless = table(catalog, "k", false);
  const changes = (s: TableSchema) =>
    c.layout === "global" ? naming.globalCdcStream() : naming.cdcStream(s.id);
  const dir = mkdtempSync(join(tmpdir(), "replicant-verify-test-"));
  try {
    const initial = Array.from({ length: 300 }, (_, i) => row(i + 1, `v${i + 1}`));
    await w.snapshot(naming.snapshotStream(t.id), t, initial);
    await w.snapshot(naming.snapshotStream(other.id), other, [row(1, "a"), row(2, "b")]);
    await w.snapshot(naming.snapshotStream(keyless.id), keyless, [
      row(1, "dup"),
      row(1, "dup"),
      row(2, "one"),
    ]);
    const expected = new Map(initial.map((r) => [Number(r[0]), r]));
    const T = changes(t);
    await w.change(T, t, "u", null, row(2, "two"));
    expected.set(2, row(2, "two"));
    await w.change(T, t, "d", row(3, "v3"), null);
    expected.delete(3);
    await w.change(T, t, "c", null, row(1000, "new"));
    expected.set(1000, row(1000, "new"));
    // A key change: the old key deleted, the new one inserted.
    await w.change(T, t, "d", row(4, "v4"), null);
    await w.change(T, t, "c", null, row(40_000, "v4"));
    expected.delete(4);
    expected.set(40_000, row(40_000, "v4"));
    // An update that did not send a TOAST value keeps the value the row had.
    await w.change(T, t, "u", null, [String(5), UNAVAILABLE, `{"b":"y","a":5}`]);
    expected.set(5, row(5, "v5", `{"a":5,"b":"y"}`));
    // The other table's changes (in the GLOBAL stream too): a truncate, then one row.
    await w.change(changes(other), other, "t", null, null);
    await w.change(changes(other), other, "c", null, row(9, "after truncate"));
    // Without a key: one duplicate deleted, one row updated, one added.
    const K = changes(keyless);
    await w.change(K, keyless, "d", row(1, "dup"), null);
    await w.change(K, keyless, "u", row(2, "one"), row(2, "uno"));
    await w.change(K, keyless, "c", null, row(3, "tres"));
    // Past the point: not in the source read at the point, so not applied.
    await w.change(T, t, "u", null, row(6, "later"), POINT + 5n);
    await w.change(T, t, "d", row(7, "v7"), null, POINT + 6n);

    tamper?.(expected);
    const point = pointOf(
      new Map([
        [t, [...expected.values()].sort((a, b) => Number(a[0]) - Number(b[0]))],
        [other, [row(9, "after truncate")]],
        [keyless, [row(1, "dup"), row(2, "uno"), row(3, "tres")]],
      ]),
    );
    const settings: VerifySettings = {
      entry: options,
      naming,
      global: c.layout === "global",
      spillDir: dir,
      fetchRows: 100,
      incomplete: new Map(),
      partitionBytes,
    };
    const tables: SnapshotTable[] = await point.source.tables();
    const verdicts = await verifyTables(redisStreamScan(redis), point, tables, settings);
    assert.deepEqual(readdirSync(dir), [], "spilled files are removed");
    return verdicts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    const keys = await redis.keys(`${catalog}_*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.del(naming.globalCdcStream());
    redis.disconnect();
  }
}

for (const format of ["compact", "extended", "fields"] as const) {
  for (const layout of ["eventual", "single", "global"] as const) {
    for (const includeSchema of format === "fields" ? [false] : [true, false]) {
      Deno.test(`verifyTables: ${format}${includeSchema ? " with schema" : ""}, ${layout}: equal`, async () => {
        const verdicts = await runCase({ format, layout, includeSchema });
        for (const v of verdicts) {
          assert.equal(v.status, "equal", JSON.stringify(v));
        }
        const t = verdicts.find((v) => v.table.endsWith(".t"))!;
        assert.equal(t.diff!.sourceRows, 300 - 2 + 2);
        assert.equal(verdicts.find((v) => v.table.endsWith(".k"))!.diff!.rebuiltRows, 3);
        // A source that differs: each key named under its kind.
        const off = await runCase({ format, layout, includeSchema }, undefined, (rows) => {
          rows.set(8, row(8, "other"));
          rows.delete(9);
          rows.set(7777, row(7777, "x"));
        });
        const diff = off.find((v) => v.table.endsWith(".t"))!.diff!;
        assert.deepEqual(diff.samples, {
          missing: ['{"id":7777}'],
          extra: ['{"id":9}'],
          different: ['{"id":8}'],
        });
      });
    }
  }
}

Deno.test("verifyTables: partitions too large are split again, with the same result", async () => {
  const verdicts = await runCase(
    { format: "compact", layout: "eventual", includeSchema: false },
    200,
  );
  for (const v of verdicts) assert.equal(v.status, "equal", JSON.stringify(v));
});

Deno.test("verifyTables: a stream known to be incomplete leaves its table not verified", async () => {
  const redis = redisClient();
  const dir = mkdtempSync(join(tmpdir(), "replicant-verify-test-"));
  try {
    const t = table("tv_cut", "t");
    const naming = new StreamNaming("tv", "default");
    const verdicts = await verifyTables(
      redisStreamScan(redis),
      pointOf(new Map([[t, [row(1, "a")]]])),
      [
        { schema: t, estimatedRows: 1 },
      ],
      {
        entry: {
          format: "compact",
          includeSchema: false,
          tombstones: true,
          connector: "postgresql",
          positionFields: PG_POSITION_FIELDS,
          replicationId: "tv",
          version: "test",
        },
        naming,
        global: false,
        spillDir: dir,
        fetchRows: 10,
        incomplete: new Map([[naming.cdcStream(t.id), "trimmed by retention"]]),
      },
    );
    assert.deepEqual(verdicts, [{
      table: "tv_cut.s.t",
      streams: ["tv_cut_s_t", "tv_cut_s_t_cdc_logs"],
      status: "not_verified",
      reason: "stream tv_cut_s_t_cdc_logs: trimmed by retention",
    }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    redis.disconnect();
  }
});
