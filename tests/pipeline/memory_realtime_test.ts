/**
 * The realtime pipeline's failure paths over an in-memory sink (MemorySink): partial landing
 * of a batch and its undo, a batch cut off by a lost connection, retries exhausted (the table
 * skipped), a permanent error, entries that cannot be undone (in doubt: EVENTUAL skips,
 * GLOBAL stops with the in-doubt file), a stop during a retry wait, checkpoint write failures,
 * source restarts, and the rule that a checkpoint is written only after every change up to it
 * landed. The real-Redis tests (failure_realtime_test.ts) inject the same faults for real.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArenaBlock, ByteArena } from "../../src/core/byte_arena.ts";
import { BatchChangeEvent } from "../../src/core/change_event.ts";
import { InDoubtError, SinkError } from "../../src/core/errors.ts";
import { JsonRowBatch } from "../../src/core/json_row_batch.ts";
import { ReplicantMetrics } from "../../src/observe/replicant_metrics.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { REALTIME_CHECKPOINT_FIELD } from "../../src/ports/checkpoint.ts";
import type { SourceTransaction, SourceTransactionPart } from "../../src/ports/streaming_source.ts";
import { readIndoubt } from "../../src/pipeline/indoubt_log.ts";
import { RealtimePipeline, type RealtimeSettings } from "../../src/pipeline/realtime_pipeline.ts";
import { newPipelineState } from "../../src/pipeline/pipeline_state.ts";
import {
  MemoryCheckpointStore,
  MemorySink,
  oom,
  permanent,
  retriable,
} from "../helpers/memory_sink.ts";
import {
  entryOptions,
  RecordingLog,
  rowIds,
  ScriptedSource,
  seqs,
  sortKeyOf,
  T1,
  T2,
  transactions,
} from "../helpers/memory_pipeline.ts";

const naming = new StreamNaming("r1", "default");
const S1 = naming.cdcStream(T1.id);
const S2 = naming.cdcStream(T2.id);
const GLOBAL = naming.globalCdcStream();

function settings(over: Partial<RealtimeSettings> = {}): RealtimeSettings {
  return {
    threads: 2,
    batchRows: 4,
    retry: { maxRetries: 2, waitMs: 1 },
    skipTablesOnFailures: true,
    entry: entryOptions,
    resume: false,
    sortKeyOf,
    sourceRetry: { maxRetries: 3, waitMs: 1 },
    ...over,
  };
}

interface Run {
  sink: MemorySink;
  store: MemoryCheckpointStore;
  source: ScriptedSource;
  log: RecordingLog;
  controller: AbortController;
}

function bed(txs: SourceTransaction[] = transactions(12)): Run {
  const sink = new MemorySink();
  return {
    sink,
    store: new MemoryCheckpointStore(sink),
    source: new ScriptedSource(txs),
    log: new RecordingLog(),
    controller: new AbortController(),
  };
}

function pipeline(r: Run, over: Partial<RealtimeSettings> = {}): RealtimePipeline {
  return new RealtimePipeline(
    r.source,
    r.sink,
    naming,
    r.store,
    settings(over),
    r.log,
    r.controller.signal,
    newPipelineState(),
  );
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/**
 * At every checkpoint write, every change of every transaction up to it was in its stream
 * (transaction i holds row i of each table).
 */
function assertCheckpointsFollowData(r: Run, streams = [S1, S2]): void {
  let checked = 0;
  for (const e of r.sink.events) {
    if (e.kind !== "checkpoint") continue;
    const token = e.fields[REALTIME_CHECKPOINT_FIELD];
    if (token === undefined) continue;
    checked++;
    for (const s of streams) {
      const held: Set<number> = new Set(rowIds(e.streams.get(s) ?? []));
      for (const id of range(1, Number(token))) {
        assert.ok(held.has(id), `checkpoint ${token} written before row ${id} landed in ${s}`);
      }
    }
  }
  assert.ok(checked > 0, "no checkpoint was written");
}

Deno.test("realtime over memory: every change lands once, in order, and the checkpoint follows", async () => {
  const r = bed();
  const out = await pipeline(r).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 12));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
  assert.equal(out.checkpoint, "12");
  assert.equal(out.transactions, 12);
  assert.equal(r.store.fields.get(REALTIME_CHECKPOINT_FIELD), "12");
  assert.equal(r.source.acknowledged.at(-1), "12");
  assertCheckpointsFollowData(r);
});

Deno.test("realtime over memory: a batch that landed in part is undone and retried whole", async () => {
  const r = bed();
  // The second entry is refused, the ones around it land: all must go before the retry.
  r.sink.fault({ op: "append", stream: S1, fault: { refuse: [1], error: retriable() } });
  const out = await pipeline(r).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 12));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
  const removed = r.sink.events.filter((e) => e.kind === "remove");
  assert.equal(removed.length, 1);
  assert.ok(removed[0].kind === "remove" && removed[0].ids.length >= 2);
  assert.deepEqual(out.skippedTables, []);
  assert.ok(r.log.has("WARN", "undone, retrying (1/2)"));
  assertCheckpointsFollowData(r);
});

Deno.test("realtime over memory: a batch cut off by a lost connection: what landed is found, undone, retried", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, after: 1, fault: { cut: 2, error: retriable() } });
  const out = await pipeline(r).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 12));
  assert.equal(r.sink.calls.get("landedAfter"), 1);
  const removed = r.sink.events.find((e) => e.kind === "remove");
  assert.ok(removed?.kind === "remove" && removed.ids.length === 2);
  assert.equal(out.checkpoint, "12");
  assertCheckpointsFollowData(r);
});

Deno.test("realtime over memory: OOM is backpressure: the sink hears of it and the batch is retried", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S2, fault: { refuse: [0], error: oom() } });
  await pipeline(r).run();
  assert.equal(r.sink.memoryPressures, 1);
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
});

Deno.test("realtime over memory: retries exhausted skip the table; the others and the checkpoint go on", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: S1,
    times: Infinity,
    fault: { refuse: [2], error: retriable() },
  });
  const out = await pipeline(r).run();
  assert.deepEqual(out.skippedTables, ["db.t1"]);
  // 1 try + 2 retries, each undone.
  assert.equal(r.sink.events.filter((e) => e.kind === "fault" && e.stream === S1).length, 3);
  assert.deepEqual(r.sink.entries(S1), []);
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
  // The skipped table's changes are dropped on purpose: the checkpoint passes them.
  assert.equal(out.checkpoint, "12");
  assert.ok(r.log.has("FAIL", "skipped"));
  assertCheckpointsFollowData(r, [S2]);
});

Deno.test("realtime over memory: a permanent error skips the table at once", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, times: Infinity, fault: { throw: permanent() } });
  const out = await pipeline(r).run();
  assert.deepEqual(out.skippedTables, ["db.t1"]);
  assert.equal(r.sink.events.filter((e) => e.kind === "fault" && e.stream === S1).length, 1);
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
});

Deno.test("realtime over memory: with skip-tables off, a table beyond retries stops the run", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, times: Infinity, fault: { throw: permanent() } });
  await assert.rejects(pipeline(r, { skipTablesOnFailures: false }).run(), /not accepted/);
  const token = r.store.fields.get(REALTIME_CHECKPOINT_FIELD);
  assert.ok(token === undefined, `checkpoint ${token} passed changes that never landed`);
});

Deno.test("realtime over memory: EVENTUAL: entries that cannot be undone are in doubt and the table is skipped", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, fault: { refuse: [1], error: retriable() } });
  r.sink.fault({ op: "remove", stream: S1, times: Infinity, fault: { throw: permanent() } });
  const out = await pipeline(r).run();
  assert.deepEqual(out.skippedTables, ["db.t1"]);
  const t1 = out.tables.find((t) => t.table === "db.t1")!;
  assert.match(t1.error!, /are in doubt/);
  assert.equal(r.sink.calls.get("remove"), 1, "a permanent undo failure is not retried");
});

Deno.test("realtime over memory: GLOBAL: entries that cannot be undone go to the in-doubt file and stop the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "memory-indoubt-"));
  try {
    const r = bed();
    const file = join(dir, "indoubt");
    r.sink.fault({
      op: "append",
      stream: GLOBAL,
      after: 1,
      fault: { refuse: [1], error: retriable() },
    });
    r.sink.fault({
      op: "remove",
      stream: GLOBAL,
      times: Infinity,
      fault: { throw: retriable("LOADING still") },
    });
    const run = pipeline(r, { replayConsistency: "GLOBAL", indoubtFile: file }).run();
    const err = await run.then(() => null, (e) => e);
    assert.ok(err instanceof InDoubtError, `expected InDoubtError, got ${err}`);
    // One try and 2 retries of the undo.
    assert.equal(r.sink.calls.get("remove"), 3);
    const listed = readIndoubt(file);
    const landed = r.sink.ids(GLOBAL);
    assert.ok(listed.length > 0);
    for (const e of listed) {
      assert.equal(e.stream, GLOBAL);
      assert.ok(landed.includes(e.id), `${e.id} listed but not in the stream`);
    }
    assert.deepEqual(err.entries, listed);
    // The checkpoint never passes the batch in doubt.
    const token = Number(r.store.fields.get(REALTIME_CHECKPOINT_FIELD) ?? 0);
    const firstInDoubt = seqs(r.sink.entries(GLOBAL)).find((_, i) => landed[i] === listed[0].id)!;
    assert.ok(token * 2 < firstInDoubt, `checkpoint ${token} passes seq ${firstInDoubt}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("realtime over memory: GLOBAL keeps one stream in commit order across a retried batch", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: GLOBAL,
    after: 2,
    fault: { refuse: [0, 3], error: retriable() },
  });
  const out = await pipeline(r, { replayConsistency: "GLOBAL" }).run();
  assert.deepEqual(seqs(r.sink.entries(GLOBAL)), range(1, 24));
  assert.equal(out.checkpoint, "12");
});

for (const holdOpen of [true, false]) {
  Deno.test(
    `realtime over memory: a stop during a retry wait returns promptly, the checkpoint below the batch (${
      holdOpen ? "while streaming" : "while draining after the source ended"
    })`,
    async () => {
      const r = bed();
      r.source.holdOpen = holdOpen;
      r.sink.fault({
        op: "append",
        stream: S1,
        after: 1,
        fault: { refuse: [1], error: retriable() },
        // The stop comes while the writer waits for its next try (about 10 s).
        onFire: () => setTimeout(() => r.controller.abort(), 50),
      });
      const t0 = Date.now();
      const out = await pipeline(r, { retry: { maxRetries: 5, waitMs: 10_000 } }).run();
      const took = Date.now() - t0;
      assert.ok(took < 2_000, `the stop took ${took} ms`);
      assert.equal(out.interrupted, true);
      // The failed batch (rows 5..8 of t1) was undone; the checkpoint stays below it.
      assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 4));
      const token = Number(out.checkpoint ?? 0);
      assert.ok(token <= 4, `checkpoint ${token} passes the batch that never landed`);
      assert.ok(r.log.has("WARN", "stopped while waiting to retry"));
      assertCheckpointsFollowData(r);
    },
  );
}

Deno.test("realtime over memory: a stop during the source's restart wait returns promptly", async () => {
  const r = bed();
  r.source.failures = 1;
  r.source.failAfter = 3;
  setTimeout(() => r.controller.abort(), 100);
  const t0 = Date.now();
  const run = pipeline(r, { sourceRetry: { maxRetries: 3, waitMs: 10_000 } }).run();
  await run.catch(() => {});
  assert.ok(Date.now() - t0 < 2_000, `the stop took ${Date.now() - t0} ms`);
});

Deno.test("realtime over memory: a failed checkpoint write is retried; beyond retries the run stops", async () => {
  const r = bed();
  r.sink.fault({ op: "checkpoint", fault: { throw: retriable() } });
  const out = await pipeline(r).run();
  assert.equal(out.checkpoint, "12");
  assert.equal(r.store.fields.get(REALTIME_CHECKPOINT_FIELD), "12");
  assert.ok(r.log.has("WARN", "cannot write checkpoint"));

  const r2 = bed();
  r2.sink.fault({ op: "checkpoint", times: Infinity, fault: { throw: retriable() } });
  await assert.rejects(pipeline(r2).run(), SinkError);
  // Nothing was acknowledged to the source that is not in the checkpoint.
  assert.deepEqual(r2.source.acknowledged, []);
});

Deno.test("realtime over memory: a source that fails restarts from the checkpoint and nothing lands twice", async () => {
  const r = bed();
  r.source.failures = 2;
  r.source.failAfter = 5;
  const out = await pipeline(r).run();
  assert.equal(r.source.starts.length, 3);
  assert.equal(r.source.starts[1], "5");
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 12));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 12));
  assert.equal(out.checkpoint, "12");
  assertCheckpointsFollowData(r);
});

Deno.test("realtime over memory: a source failing beyond its retries stops the run", async () => {
  const r = bed();
  r.source.failures = 5;
  r.source.failAfter = 0;
  await assert.rejects(
    pipeline(r, { sourceRetry: { maxRetries: 2, waitMs: 1 } }).run(),
    /source connection lost/,
  );
  assert.equal(r.source.starts.length, 3);
});

Deno.test("realtime over memory: a resume skips what each stream's tail already holds", async () => {
  const r = bed();
  await pipeline(r).run();
  // A crash after the data and before the checkpoint: the source sends from 6 again.
  r.store.fields.set(REALTIME_CHECKPOINT_FIELD, "6");
  const again = await new RealtimePipeline(
    new ScriptedSource(transactions(14)),
    r.sink,
    naming,
    r.store,
    settings({ resume: true }),
    r.log,
    new AbortController().signal,
    newPipelineState(),
  ).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 14));
  assert.equal(again.tables.find((t) => t.stream === S1)!.duplicates, 6);
  assert.equal(again.checkpoint, "14");
});

Deno.test("realtime over memory: a source that fails inside a transaction in parts: the parts sent again land once", async () => {
  const txs: SourceTransactionPart[] = transactions(10);
  // Transaction 6 comes in two parts: t1's change, then t2's.
  const [a, b] = txs[5].events;
  txs.splice(5, 1, { ...txs[5], events: [a], more: true }, { ...txs[5], events: [b] });
  const r = bed(txs);
  r.source.failures = 1;
  r.source.failAfter = 6;
  const out = await pipeline(r).run();
  // The checkpoint cannot pass the open transaction: the source starts again before it.
  assert.deepEqual(r.source.starts, [null, "5"]);
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 10));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 10));
  assert.equal(out.checkpoint, "10");
  assertCheckpointsFollowData(r);
});

/** An arena that counts the blocks held for entries not yet accepted. */
class CountingArena extends ByteArena {
  held = 0;
  holds = 0;
  /** Blocks the encoder asked for room in. */
  rooms = 0;
  override room(need: number): ArenaBlock {
    this.rooms++;
    return super.room(need);
  }
  override hold(block: ArenaBlock): void {
    this.held++;
    this.holds++;
    super.hold(block);
  }
  override release(block: ArenaBlock): void {
    this.held--;
    super.release(block);
  }
}

/** `metric{labels} value` of a rendered registry (0 when absent). */
function metricValue(m: ReplicantMetrics, series: string): number {
  const line = m.render().split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Byte rows, as sources deliver them: the encoder writes them into the run's arena. */
function byteRows(txs: SourceTransaction[]): SourceTransaction[] {
  return txs.map((tx) => ({
    ...tx,
    events: tx.events.map((ev) =>
      new BatchChangeEvent(ev.table, ev.op, {
        batch: JsonRowBatch.fromRows(2, [ev.after!]),
        before: -1,
        after: 0,
      }, ev.position)
    ),
  }));
}

Deno.test("realtime over memory: a run counts in and allocates from the state it is handed", async () => {
  const r = bed(byteRows(transactions(12)));
  r.sink.fault({ op: "append", stream: S1, fault: { refuse: [1], error: retriable() } });
  const state = { metrics: new ReplicantMetrics(), arena: new CountingArena(256, 4) };
  const run = new RealtimePipeline(
    r.source,
    r.sink,
    naming,
    r.store,
    settings(),
    r.log,
    r.controller.signal,
    state,
  );
  await run.run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 12));
  assert.equal(metricValue(state.metrics, 'replicant_batch_retries_total{phase="realtime"}'), 1);
  assert.ok(metricValue(state.metrics, "replicant_undone_entries_total") >= 2);
  assert.equal(state.arena.rooms, 24, "every change is encoded into the run's arena");
  assert.equal(state.arena.holds, 24);
  assert.equal(state.arena.held, 0, "a block is still held after every entry was accepted");
});

Deno.test("realtime over memory: two runs side by side in one process keep their metrics apart", async () => {
  // One run meets a refused entry (a retry and an undo), the other none; they run at once.
  const a = bed(byteRows(transactions(12)));
  const b = bed(byteRows(transactions(5)));
  a.sink.fault({ op: "append", stream: S1, fault: { refuse: [1], error: retriable() } });
  const stateA = { metrics: new ReplicantMetrics(), arena: new CountingArena(256, 4) };
  const stateB = { metrics: new ReplicantMetrics(), arena: new CountingArena(256, 4) };
  const runOf = (r: Run, state: typeof stateA) =>
    new RealtimePipeline(
      r.source,
      r.sink,
      naming,
      r.store,
      settings(),
      r.log,
      r.controller.signal,
      state,
    ).run();
  await Promise.all([runOf(a, stateA), runOf(b, stateB)]);
  assert.deepEqual(rowIds(a.sink.entries(S1)), range(1, 12));
  assert.deepEqual(rowIds(b.sink.entries(S1)), range(1, 5));
  const retries = 'replicant_batch_retries_total{phase="realtime"}';
  assert.equal(metricValue(stateA.metrics, retries), 1);
  assert.equal(metricValue(stateB.metrics, retries), 0, "run B counted run A's retry");
  assert.equal(metricValue(stateB.metrics, "replicant_undone_entries_total"), 0);
  const changes = 'replicant_stream_entries_total{phase="realtime"}';
  assert.equal(metricValue(stateA.metrics, changes), 24, "run A: 12 changes in each of 2 tables");
  assert.equal(metricValue(stateB.metrics, changes), 10, "run B: 5 changes in each of 2 tables");
  assert.equal(stateA.arena.rooms, 24, "run A's changes are encoded into its own arena");
  assert.equal(stateB.arena.rooms, 10, "run B's changes are encoded into its own arena");
});
