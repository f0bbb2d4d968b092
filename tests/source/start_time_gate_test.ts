/**
 * StartTimeGate with a source that delivers large transactions in parts (the streaming
 * contract): a transaction is passed on or left out whole, decided by its first part.
 * No server: the wrapped source replays a fixed list of deliveries.
 */
import assert from "node:assert/strict";
import { BatchChangeEvent } from "../../src/core/change_event.ts";
import { NO_ROWS } from "../../src/core/json_row_batch.ts";
import type { TableSchema } from "../../src/core/table_schema.ts";
import type { SourceTransactionPart, StreamingSource } from "../../src/ports/streaming_source.ts";
import { StartTimeGate } from "../../src/source/start_time_gate.ts";

const table: TableSchema = {
  id: { catalog: "db", schema: null, table: "t" },
  columns: [],
  keyColumns: [],
  hasKey: false,
};

function delivery(tsMs: number, checkpoint: string, events: number, more?: boolean) {
  const part: SourceTransactionPart = {
    checkpoint,
    events: Array.from(
      { length: events },
      (_, i) =>
        new BatchChangeEvent(table, "t", { batch: NO_ROWS, before: -1, after: -1 }, {
          tsMs,
          fields: "",
          sortKey: `${checkpoint}${i}`,
        }),
    ),
    bytes: events,
    commitTsMs: tsMs,
  };
  if (more) part.more = true;
  return part;
}

function replaying(deliveries: SourceTransactionPart[]): StreamingSource {
  return {
    connector: "mysql",
    tables: () => [],
    start: async (_from, onTransaction) => {
      for (const d of deliveries) await onTransaction(d);
    },
    acknowledge: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}

async function through(gate: StreamingSource): Promise<[string, number, boolean][]> {
  const out: [string, number, boolean][] = [];
  await gate.start(null, (tx) => {
    out.push([tx.checkpoint, tx.events.length, tx.more === true]);
    return Promise.resolve();
  }, new AbortController().signal);
  return out;
}

Deno.test("start-time gate: a transaction whose first part is before the start is left out whole", async () => {
  // The first part began before the start; the last part commits after it.
  const gate = new StartTimeGate(
    replaying([
      delivery(50, "C0", 2),
      delivery(90, "C0", 3, true),
      delivery(90, "C0", 3, true),
      delivery(120, "C1", 1),
      delivery(130, "C2", 2),
    ]),
    100,
    true,
  );
  assert.deepEqual(await through(gate), [
    ["C0", 0, false],
    ["C0", 0, true],
    ["C0", 0, true],
    ["C1", 0, false],
    ["C2", 2, false],
  ]);
});

Deno.test("start-time gate: a transaction whose first part is at the start is passed on whole", async () => {
  const gate = new StartTimeGate(
    replaying([
      delivery(50, "C0", 2),
      delivery(100, "C0", 3, true),
      delivery(100, "C0", 3, true),
      delivery(100, "C1", 1),
    ]),
    100,
    true,
  );
  assert.deepEqual(await through(gate), [
    ["C0", 0, false],
    ["C0", 3, true],
    ["C0", 3, true],
    ["C1", 1, false],
  ]);
});
