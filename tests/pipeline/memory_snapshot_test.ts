/**
 * The snapshot pipeline's failure paths over an in-memory sink (MemorySink): rows refused in
 * the middle of a batch (only they are retried), a batch cut off by a lost connection (what
 * landed is found by key), retries exhausted and permanent errors (the table skipped, or the
 * run stopped), a stop during a retry wait, and the rule that a table is marked done only
 * after all its rows landed.
 */
import assert from "node:assert/strict";
import { SinkError } from "../../src/core/errors.ts";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import { SnapshotProgress } from "../../src/observe/snapshot_progress.ts";
import { snapshotDoneField } from "../../src/ports/checkpoint.ts";
import { SnapshotPipeline, type SnapshotSettings } from "../../src/pipeline/snapshot_pipeline.ts";
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
  ScriptedSnapshot,
  T1,
  T2,
} from "../helpers/memory_pipeline.ts";

const naming = new StreamNaming("r1", "default");
const S1 = naming.snapshotStream(T1.id);
const S2 = naming.snapshotStream(T2.id);

function settings(over: Partial<SnapshotSettings> = {}): SnapshotSettings {
  return {
    threads: 2,
    fetchRows: 10,
    batchRows: 4,
    writeMode: "fail",
    resume: false,
    retry: { maxRetries: 2, waitMs: 1 },
    skipTablesOnFailures: true,
    logRowLevelErrors: true,
    entry: entryOptions,
    ...over,
  };
}

interface Run {
  sink: MemorySink;
  store: MemoryCheckpointStore;
  log: RecordingLog;
  controller: AbortController;
  rows: Map<TableSchema, number>;
}

function bed(rows = new Map([[T1, 40], [T2, 25]])): Run {
  const sink = new MemorySink();
  return {
    sink,
    store: new MemoryCheckpointStore(sink),
    log: new RecordingLog(),
    controller: new AbortController(),
    rows,
  };
}

function pipeline(r: Run, over: Partial<SnapshotSettings> = {}): SnapshotPipeline {
  return new SnapshotPipeline(
    new ScriptedSnapshot(r.rows),
    r.sink,
    naming,
    r.store,
    settings(over),
    r.log,
    new SnapshotProgress({ write() {} }, 3_600_000),
    r.controller.signal,
    newPipelineState(),
  );
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

/** A table is marked done only when every one of its rows was in its stream. */
function assertDoneFollowsData(r: Run): void {
  for (const [t, n] of r.rows) {
    const stream = naming.snapshotStream(t.id);
    for (const e of r.sink.events) {
      if (e.kind !== "checkpoint" || e.fields[snapshotDoneField(stream)] !== "1") continue;
      const held: number[] = rowIds(e.streams.get(stream) ?? []);
      assert.deepEqual(sorted(held), range(1, n), `${stream} marked done before its rows landed`);
    }
  }
}

Deno.test("snapshot over memory: every row lands once and each table is marked done after it", async () => {
  const r = bed();
  const out = await pipeline(r).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 40));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 25));
  assert.deepEqual(out.tables.map((t) => t.status), ["done", "done"]);
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), "1");
  assertDoneFollowsData(r);
});

Deno.test("snapshot over memory: rows refused in a batch are retried alone; the others stay", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: S1,
    after: 2,
    fault: { refuse: [1, 3], error: retriable() },
  });
  const out = await pipeline(r).run();
  assert.deepEqual(sorted(rowIds(r.sink.entries(S1))), range(1, 40));
  assert.equal(r.sink.events.filter((e) => e.kind === "remove").length, 0);
  assert.equal(out.tables.find((t) => t.stream === S1)!.rows, 40);
  assert.ok(r.log.has("WARN", "row of db.t1 failed"));
  assertDoneFollowsData(r);
});

Deno.test("snapshot over memory: a batch cut off by a lost connection: the rows that landed are not sent again", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S2, after: 1, fault: { cut: 3, error: retriable() } });
  const out = await pipeline(r).run();
  // The retried rest of the batch lands after the batches sent meanwhile.
  assert.deepEqual(sorted(rowIds(r.sink.entries(S2))), range(1, 25));
  assert.ok(r.log.has("INFO", "3 of 4 entries of a batch cut off"));
  assert.equal(out.tables.find((t) => t.stream === S2)!.status, "done");
  assertDoneFollowsData(r);
});

Deno.test("snapshot over memory: OOM makes the sink's memory gate look again", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, fault: { refuse: [0], error: oom() } });
  await pipeline(r).run();
  assert.equal(r.sink.memoryPressures, 1);
  assert.deepEqual(sorted(rowIds(r.sink.entries(S1))), range(1, 40));
});

Deno.test("snapshot over memory: retries exhausted skip the table, not marked done; the other table is done", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: S1,
    after: 1,
    times: Infinity,
    fault: { refuse: [0], error: retriable() },
  });
  const out = await pipeline(r).run();
  const t1 = out.tables.find((t) => t.stream === S1)!;
  assert.equal(t1.status, "skipped");
  assert.match(t1.error!, /after 3 tries/);
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
  assert.equal(out.tables.find((t) => t.stream === S2)!.status, "done");
  assertDoneFollowsData(r);
});

Deno.test("snapshot over memory: a permanent error without skip-tables stops the run", async () => {
  const r = bed();
  r.sink.fault({ op: "append", stream: S1, times: Infinity, fault: { throw: permanent() } });
  // One batch per chunk, at most two chunks in flight: two tries at most without retries.
  await assert.rejects(
    pipeline(r, { skipTablesOnFailures: false, fetchRows: 4, threads: 1 }).run(),
    /not accepted/,
  );
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
  assert.equal(
    r.sink.events.filter((e) => e.kind === "fault" && e.stream === S1).length <= 2,
    true,
    "a permanent error is not retried",
  );
});

Deno.test("snapshot over memory: a stop during a retry wait after a lost connection returns promptly, the table interrupted", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: S1,
    after: 1,
    fault: { cut: 1, error: retriable() },
    onFire: () => setTimeout(() => r.controller.abort(), 50),
  });
  const t0 = Date.now();
  const out = await pipeline(r, { retry: { maxRetries: 5, waitMs: 10_000 } }).run();
  assert.ok(Date.now() - t0 < 2_000, `the stop took ${Date.now() - t0} ms`);
  assert.equal(out.interrupted, true);
  assert.equal(out.tables.find((t) => t.stream === S1)!.status, "interrupted");
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
});

Deno.test("snapshot over memory: a stop while refused rows wait to be retried leaves nothing above them, and a resume completes", async () => {
  const r = bed();
  r.sink.fault({
    op: "append",
    stream: S1,
    fault: { refuse: [1], error: retriable() },
    onFire: () => setTimeout(() => r.controller.abort(), 50),
  });
  const t0 = Date.now();
  const out = await pipeline(r, { retry: { maxRetries: 5, waitMs: 10_000 } }).run();
  assert.ok(Date.now() - t0 < 2_000, `the stop took ${Date.now() - t0} ms`);
  assert.equal(out.interrupted, true);
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
  // The rows that landed after the refused one were taken back out: the stream's newest
  // entry has every earlier row before it, which is where --resume continues.
  const held = rowIds(r.sink.entries(S1));
  assert.deepEqual(held, range(1, held.length));
  const again = await pipeline({ ...r, controller: new AbortController() }, { resume: true }).run();
  assert.equal(again.interrupted, false);
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 40));
  assert.deepEqual(rowIds(r.sink.entries(S2)), range(1, 25));
});

Deno.test("snapshot over memory: a failed done mark stops the run (the table resumes after its tail)", async () => {
  const r = bed(new Map([[T1, 10]]));
  r.sink.fault({ op: "checkpoint", fault: { throw: retriable() } });
  await assert.rejects(pipeline(r).run(), /LOADING/);
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
  // --resume continues after the newest row: nothing is written twice.
  const again = await pipeline(r, { resume: true }).run();
  assert.deepEqual(rowIds(r.sink.entries(S1)), range(1, 10));
  assert.equal(again.tables[0].status, "done");
});

Deno.test("snapshot over memory: a stop while refused rows wait, with rows above them that could not be taken back, returns promptly and says --resume could skip them", async () => {
  // One batch of 4: row 2 refused, rows 3 and 4 land above it and their take-back fails.
  const r = bed(new Map([[T1, 4]]));
  r.sink.fault({ op: "append", stream: S1, fault: { refuse: [1], error: retriable() } });
  r.sink.fault({
    op: "remove",
    stream: S1,
    fault: { throw: retriable() },
    onFire: () => setTimeout(() => r.controller.abort(), 50),
  });
  const t0 = Date.now();
  await assert.rejects(
    pipeline(r, { retry: { maxRetries: 5, waitMs: 10_000 } }).run(),
    (err: Error) => err instanceof SinkError && /could not be taken back/.test(err.message),
  );
  assert.ok(Date.now() - t0 < 2_000, `the stop took ${Date.now() - t0} ms`);
  assert.deepEqual(rowIds(r.sink.entries(S1)), [1, 3, 4]);
  assert.equal(r.store.fields.get(snapshotDoneField(S1)), undefined);
});
