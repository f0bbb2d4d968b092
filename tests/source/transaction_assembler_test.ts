/**
 * The transaction assembler both sources share, without servers: parts and committed
 * transactions out of decoded changes, the part-size rule, and the checkpoint each carries.
 */
import assert from "node:assert/strict";
import { BatchChangeEvent } from "../../src/core/change_event.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import type { SourceTransactionPart } from "../../src/ports/streaming_source.ts";
import { TransactionAssembler } from "../../src/source/transaction_assembler.ts";
import { Checkpointer, type InFlightTransaction } from "../../src/pipeline/checkpointer.ts";

const table: TableSchema = {
  id: { catalog: "db", schema: null, table: "t" },
  columns: [{
    name: "id",
    sourceType: "int",
    connectType: "int32",
    nullable: false,
    keyPosition: 1,
    defaultValue: null,
  }],
  keyColumns: [0],
  hasKey: true,
};

/** Adds one change the way a source does: a part to hand over first when the open one is full. */
function change(asm: TransactionAssembler, out: SourceTransactionPart[], bytes = 10): void {
  const part = asm.takeFullPart();
  if (part) out.push(part);
  const batch = asm.batch(table, 1);
  batch.pushFragment(String(batch.rows));
  batch.endRow();
  const n = asm.nextOrdinal();
  asm.add(
    new BatchChangeEvent(table, "c", { batch, before: -1, after: batch.rows - 1 }, {
      tsMs: 1,
      fields: `"n":${n}`,
      sortKey: String(n).padStart(10, "0"),
    }),
  );
  asm.addBytes(bytes);
}

Deno.test("assembler: a small transaction is one delivery with its own checkpoint", () => {
  const asm = new TransactionAssembler({ maxEvents: 3 }, "C0");
  const out: SourceTransactionPart[] = [];
  asm.begin(5);
  change(asm, out);
  change(asm, out);
  const last = asm.commit("C1", 7)!;
  assert.deepEqual(out, []);
  assert.equal(last.checkpoint, "C1");
  assert.equal(last.more, undefined);
  assert.equal(last.commitTsMs, 7);
  assert.deepEqual(last.events.map((e) => e.position.sortKey), ["0000000000", "0000000001"]);
  assert.equal(last.bytes, 20);
  assert.equal(asm.checkpoint, "C1");
  assert.equal(asm.open, false);
});

Deno.test("assembler: exactly full is one delivery; one change more makes two parts", () => {
  const asm = new TransactionAssembler({ maxEvents: 3 }, "C0");
  const out: SourceTransactionPart[] = [];
  asm.begin(1);
  for (let i = 0; i < 3; i++) change(asm, out);
  assert.equal(asm.commit("C1", 1)!.events.length, 3);
  assert.equal(out.length, 0, "a full part waits for the next change: the last is never empty");

  asm.begin(2);
  for (let i = 0; i < 4; i++) change(asm, out);
  const last = asm.commit("C2", 2)!;
  assert.equal(out.length, 1);
  assert.equal(out[0].more, true);
  assert.equal(out[0].checkpoint, "C1", "a part carries the checkpoint before its transaction");
  assert.equal(out[0].events.length, 3);
  assert.equal(last.events.length, 1);
  assert.equal(last.checkpoint, "C2");
  // Positions continue across parts; each part has its own rows.
  assert.equal(last.events[0].position.sortKey, "0000000003");
  assert.deepEqual(last.events[0].after, ["0"]);
});

Deno.test("assembler: 10 changes in parts of 3 give 3 parts and a last one, in order", () => {
  const asm = new TransactionAssembler({ maxEvents: 3 }, null);
  const out: SourceTransactionPart[] = [];
  asm.begin(1);
  for (let i = 0; i < 10; i++) change(asm, out);
  out.push(asm.commit("C1", 1)!);
  assert.deepEqual(out.map((p) => p.events.length), [3, 3, 3, 1]);
  assert.deepEqual(out.map((p) => p.more ?? false), [true, true, true, false]);
  assert.deepEqual(out.map((p) => p.checkpoint), ["", "", "", "C1"]);
  const keys = out.flatMap((p) => p.events.map((e) => Number(e.position.sortKey)));
  assert.deepEqual(keys, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

Deno.test("assembler: the byte bound splits too", () => {
  const asm = new TransactionAssembler({ maxEvents: 100, maxBytes: 25 }, "C0");
  const out: SourceTransactionPart[] = [];
  asm.begin(1);
  for (let i = 0; i < 5; i++) change(asm, out, 10);
  out.push(asm.commit("C1", 1)!);
  assert.deepEqual(out.map((p) => p.events.length), [3, 2]);
  assert.deepEqual(out.map((p) => p.bytes), [30, 20]);
});

Deno.test("assembler: nothing selected gives no delivery, but moves the checkpoint", () => {
  const asm = new TransactionAssembler({ maxEvents: 3 }, "C0");
  asm.begin(1);
  assert.equal(asm.touched, false);
  assert.equal(asm.commit("C1", 1), null);
  assert.equal(asm.checkpoint, "C1");
  // A commit with no transaction open (a marker without BEGIN) too.
  assert.equal(asm.commit("C2", 1), null);
  assert.equal(asm.checkpoint, "C2");
  const empty = asm.empty("C3", 0);
  assert.deepEqual(empty, { checkpoint: "C3", events: [], bytes: 0, commitTsMs: 0 });
  assert.equal(asm.checkpoint, "C3");
});

Deno.test("assembler: DDL alone is delivered; DDL goes with the part it was seen in", () => {
  const asm = new TransactionAssembler({ maxEvents: 1 }, "C0");
  const out: SourceTransactionPart[] = [];
  const ddl = (n: number) => ({
    table: table.id,
    statement: `ALTER ${n}`,
    after: table,
    dropped: false,
    position: { tsMs: 1, fields: "", sortKey: String(n) },
  });
  asm.begin(1);
  asm.addDdl(ddl(asm.nextOrdinal()));
  assert.equal(asm.touched, true);
  const alone = asm.commit("C1", 1)!;
  assert.deepEqual(alone.ddl!.map((d) => d.statement), ["ALTER 0"]);
  assert.equal(alone.events.length, 0);

  asm.begin(2);
  change(asm, out);
  asm.addDdl(ddl(asm.ordinal));
  change(asm, out);
  const last = asm.commit("C2", 2)!;
  assert.deepEqual(out[0].ddl!.map((d) => d.statement), ["ALTER 1"]);
  assert.deepEqual(last.ddl, []);
});

Deno.test("assembler: a dropped transaction is forgotten; begin drops one left open", () => {
  const asm = new TransactionAssembler({ maxEvents: 2 }, "C0");
  const out: SourceTransactionPart[] = [];
  asm.begin(1);
  for (let i = 0; i < 3; i++) change(asm, out);
  asm.drop();
  assert.equal(asm.open, false);
  assert.equal(asm.touched, false);
  asm.begin(2);
  change(asm, out);
  asm.begin(3);
  change(asm, out);
  const last = asm.commit("C1", 3)!;
  assert.equal(last.events.length, 1);
  assert.equal(last.events[0].position.sortKey, "0000000000", "ordinals start over");
  assert.equal(asm.checkpoint, "C1");
});

Deno.test("assembler + checkpointer: a transaction in parts is one, at its last part's token", () => {
  // What the pipeline does with deliveries (realtime_pipeline.ts #onTransaction): parts of a
  // transaction share one in-flight transaction, closed with the last part's checkpoint.
  const asm = new TransactionAssembler({ maxEvents: 2 }, "C0");
  const deliveries: SourceTransactionPart[] = [];
  asm.begin(1);
  for (let i = 0; i < 7; i++) change(asm, deliveries);
  deliveries.push(asm.commit("C1", 1)!);
  asm.begin(2);
  change(asm, deliveries);
  deliveries.push(asm.commit("C2", 2)!);
  const c = new Checkpointer();
  let open: InFlightTransaction | null = null;
  const done: string[] = [];
  for (const d of deliveries) {
    const tx: InFlightTransaction = open ?? c.begin(d.checkpoint);
    c.add(tx, d.events.length);
    if (d.more) open = tx;
    else {
      c.close(tx, d.checkpoint);
      open = null;
    }
    c.accepted(tx, d.events.length);
    const token = c.advance((t) => done.push(t.token));
    if (d.more) assert.equal(token, null, "a part never moves the checkpoint");
  }
  assert.deepEqual(done, ["C1", "C2"]);
});
