import assert from "node:assert/strict";
import type { TableSchema } from "../../src/core/table_schema.ts";
import { Checkpointer } from "../../src/pipeline/checkpointer.ts";
import { type SchemaChange, SchemaTracker } from "../../src/pipeline/schema_tracker.ts";
import { SchemaHistory } from "../../src/schema/schema_history.ts";

const col = (name: string) => ({
  name,
  sourceType: "text",
  connectType: "string" as const,
  nullable: true,
  keyPosition: null,
  defaultValue: null,
});
const table = (...cols: string[]): TableSchema => ({
  id: { catalog: "db", schema: "s", table: "t" },
  columns: cols.map(col),
  keyColumns: [0],
  hasKey: false,
});
const at = (n: number) => ({ tsMs: 0, fields: "", sortKey: String(n).padStart(4, "0") });
const silent = { info() {}, warn() {} };

Deno.test("schema tracker: labels versions, reports changes, commits them with the checkpoint", async () => {
  const history = SchemaHistory.inMemory();
  await history.recordAll([table("a")]);
  const changes: SchemaChange[] = [];
  const tracker = new SchemaTracker(history, (c) => changes.push(c), silent);
  tracker.load(null);
  const cp = new Checkpointer();
  const tx1 = cp.begin("1");
  const v1 = table("a");
  assert.equal((await tracker.label(v1, at(1), tx1)).version, 1);
  assert.equal(tracker.labelled(v1)?.version, 1);
  assert.equal(changes.length, 0, "same columns: no change");
  const v2 = await tracker.label(table("a", "b"), at(2), tx1);
  assert.equal(v2.version, 2);
  assert.deepEqual(changes.map((c) => [c.change.before?.version, c.change.after?.version]), [
    [1, 2],
  ]);
  // Nothing committed yet: the saved versions are still those of the start.
  assert.equal(tracker.pending(), JSON.stringify([["db", "s", "t", 1]]));
  tracker.saved(tracker.pending()!);
  assert.equal(tracker.pending(), null);
  cp.close(tx1);
  cp.advance((tx) => tracker.committed(tx));
  const json = tracker.pending()!;
  assert.equal(json, JSON.stringify([["db", "s", "t", 2]]));
  // A resume from that checkpoint starts at version 2; a replay of the old layout is a change.
  const again = new SchemaTracker(history, (c) => changes.push(c), silent);
  assert.deepEqual(again.load(json).map((e) => e.version), [2]);
  const tx2 = new Checkpointer().begin("2");
  await again.label(table("a"), at(3), tx2);
  assert.deepEqual(changes.at(-1)!.change.after?.version, 3, "a new version: versions only grow");
  // A dropped table leaves the saved versions once committed.
  await again.statement({
    table: table().id,
    statement: "DROP TABLE t",
    after: null,
    dropped: true,
    position: at(4),
  }, tx2);
  assert.equal(changes.at(-1)!.change.after, null);
  assert.deepEqual(tx2.schemas, new Map([['["db","s","t"]', null]]));
});
