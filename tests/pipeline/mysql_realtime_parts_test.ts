/**
 * The streaming contract for large transactions on a real MariaDB, through the realtime
 * pipeline: a transaction larger than a part comes in parts marked `more` that carry the
 * checkpoint before it, then a last part with its own; the pipeline counts it once and moves
 * the checkpoint only to the last part's token.
 */
import assert from "node:assert/strict";
import type { EntryOptions } from "../../src/core/entry_encoder.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { RealtimePipeline, silentLog } from "../../src/pipeline/realtime_pipeline.ts";
import { REALTIME_CHECKPOINT_FIELD } from "../../src/ports/checkpoint.ts";
import type { SourceTransactionPart, StreamingSource } from "../../src/ports/streaming_source.ts";
import { RedisCheckpointStore } from "../../src/sink/redis/checkpoint_store.ts";
import { RedisStreamSink } from "../../src/sink/redis/redis_stream_sink.ts";
import { MysqlBinlogSource } from "../../src/source/mysql/mysql_binlog_source.ts";
import { newPipelineState } from "../../src/pipeline/pipeline_state.ts";
import {
  MYSQL_POSITION_FIELDS,
  mysqlSortKeyOfSource,
} from "../../src/source/mysql/mysql_position.ts";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import {
  admin,
  endpoint,
  env,
  selectTables,
  uniqueName,
} from "../source/mysql/mysql_test_helpers.ts";

const PART = 100;
const BIG = 2 * PART + 50;

/** The source, with every delivery it makes recorded. */
function recording(source: MysqlBinlogSource, seen: SourceTransactionPart[]): StreamingSource {
  return {
    connector: source.connector,
    tables: () => source.tables(),
    start: (from, onTransaction, signal) =>
      source.start(from, (tx) => {
        if (tx.events.length > 0 || tx.more) seen.push({ ...tx, events: [...tx.events] });
        return onTransaction(tx);
      }, signal),
    acknowledge: (c) => source.acknowledge(c),
    close: () => source.close(),
  };
}

Deno.test("mysql realtime: a transaction larger than a part is one transaction, one checkpoint", async () => {
  const table = uniqueName("parts");
  const db = await admin();
  await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(20))`);
  const redisEnv = serviceEnv().redis;
  const sink = await RedisStreamSink.open({
    host: redisEnv.host,
    port: redisEnv.port,
    poolSize: 2,
    origin: "test",
  }, { maxStreamLength: 0 });
  const naming = new StreamNaming(table, "test");
  const checkpoints = new RedisCheckpointStore(sink.client, naming.checkpointKey());
  const stream = naming.cdcStream({ catalog: env.database, schema: null, table });
  const source = await MysqlBinlogSource.open(endpoint(), {
    selection: selectTables(table),
    maxEventsPerDelivery: PART,
    idleCheckpointMs: 0,
  });
  const ac = new AbortController();
  try {
    const from = await source.currentPosition();
    await checkpoints.write({ [REALTIME_CHECKPOINT_FIELD]: from });
    const entry: EntryOptions = {
      format: "compact",
      includeSchema: false,
      tombstones: false,
      connector: "mysql",
      positionFields: MYSQL_POSITION_FIELDS,
      replicationId: table,
      version: "test",
    };
    const seen: SourceTransactionPart[] = [];
    const run = new RealtimePipeline(
      recording(source, seen),
      sink,
      naming,
      checkpoints,
      {
        threads: 2,
        batchRows: 30,
        retry: { maxRetries: 3, waitMs: 20 },
        skipTablesOnFailures: true,
        entry,
        resume: true,
        sortKeyOf: mysqlSortKeyOfSource,
      },
      silentLog,
      ac.signal,
      newPipelineState(),
    ).run();
    run.catch(() => {});

    // One transaction of BIG rows (three parts), then one of a single row.
    await db.query(`INSERT INTO ${table} SELECT seq, 'big' FROM seq_1_to_${BIG}`);
    await db.query(`INSERT INTO ${table} VALUES (${BIG + 1}, 'small')`);
    await waitFor(async () => (await sink.client.xlen(stream)) === BIG + 1, {
      what: `${BIG + 1} entries in ${stream}`,
      timeoutMs: 30_000,
    });
    ac.abort();
    const outcome = await run;

    assert.deepEqual(
      seen.map((d) => [d.events.length, d.more === true]),
      [[PART, true], [PART, true], [BIG - 2 * PART, false], [1, false]],
    );
    // The parts carry the checkpoint before their transaction; the last part its own.
    assert.equal(seen[0].checkpoint, from);
    assert.equal(seen[1].checkpoint, from);
    assert.notEqual(seen[2].checkpoint, from);
    assert.equal(outcome.transactions, 2, "each transaction counts once, whatever its parts");
    assert.equal(outcome.checkpoint, seen[3].checkpoint);
    assert.equal(await checkpoints.get(REALTIME_CHECKPOINT_FIELD), seen[3].checkpoint);
    // One source transaction: every entry of the big one has the same binlog position.
    const entries = await sink.client.xrange(stream, "-", "+") as [string, string[]][];
    const positions = new Set(
      entries.slice(0, BIG).map(([, f]) => {
        const s = JSON.parse(f[1]).source;
        return `${s.file}:${s.pos}`;
      }),
    );
    assert.equal(positions.size, 1);
  } finally {
    ac.abort();
    await source.close();
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
    await sink.client.del(stream, naming.checkpointKey());
    await sink.close();
  }
});
