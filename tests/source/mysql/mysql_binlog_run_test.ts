/**
 * BinlogRun, the binlog source's event loop, fed the way zongji feeds it: every event of one
 * socket read in one synchronous burst, held back while the connection is paused. The table's
 * schema is read from a real MariaDB; the events are built here, so the burst is exact.
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import type { AnyBinlogEvent } from "@vlasky/zongji";
import type { SourceTransactionPart } from "../../../src/ports/streaming_source.ts";
import { BinlogRun, type BinlogSchemas } from "../../../src/source/mysql/mysql_binlog_run.ts";
import { openMysql } from "../../../src/source/mysql/mysql_endpoint.ts";
import { readMysqlTables } from "../../../src/source/mysql/mysql_schema_reader.ts";
import {
  mysqlBinlogDecoder,
  mysqlBinlogStringWriter,
} from "../../../src/source/mysql/mysql_value_decoder.ts";
import type { ZongjiAdapter } from "../../../src/source/mysql/zongji_adapter.ts";
import { admin, endpoint, env, selectTables, uniqueName } from "./mysql_test_helpers.ts";

/** A zongji stand-in: emits queued events while not paused, as mysql2 does with packets. */
class BurstAdapter {
  #handler: (e: AnyBinlogEvent) => void = () => {};
  #queue: AnyBinlogEvent[] = [];
  #paused = false;
  pauses = 0;

  constructor(private readonly map: { parentSchema: string; tableName: string }) {}

  onEvent(h: (e: AnyBinlogEvent) => void): void {
    this.#handler = h;
  }
  onError(): void {}
  stop(): void {
    this.#queue = [];
  }
  pause(): void {
    if (!this.#paused) this.pauses++;
    this.#paused = true;
  }
  resume(): void {
    this.#paused = false;
    this.#pump();
  }
  get gtidSet(): string | undefined {
    return undefined;
  }
  eventStart(e: { nextPosition: number; size: number }): number {
    return e.nextPosition - e.size - 19;
  }
  table(): { parentSchema: string; tableName: string } {
    return this.map;
  }
  tableMapped(): void {}

  /** One socket read: every event handed over at once, unless the run pauses the connection. */
  burst(events: AnyBinlogEvent[]): void {
    this.#queue.push(...events);
    this.#pump();
  }

  #pump(): void {
    while (!this.#paused && this.#queue.length > 0) this.#handler(this.#queue.shift()!);
  }
}

function event(name: string, fields: Record<string, unknown>): AnyBinlogEvent {
  return { getEventName: () => name, timestamp: 1_700_000_000_000, size: 10, ...fields } as never;
}

Deno.test("binlog run: a large transaction read in one burst lets the event loop turn while it is decoded", async () => {
  const table = uniqueName("burst");
  const db = await admin();
  await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(20))`);
  const conn = await openMysql(endpoint());
  try {
    const [schema] = await readMysqlTables(conn, selectTables(table), env.database);
    const entry = {
      table: schema,
      decoders: schema.types.map(mysqlBinlogDecoder),
      strings: schema.types.map(mysqlBinlogStringWriter),
      generation: 0,
      historical: false,
    };
    const schemas: BinlogSchemas = {
      known: () => entry,
      lookup: () => Promise.resolve(entry),
      afterDdl: () => Promise.resolve(schema),
      dropped: () => {},
      catalogChanged: () => {},
      selected: () => true,
    };
    const adapter = new BurstAdapter({ parentSchema: env.database, tableName: table });
    // Counts turns of the event loop (I/O callbacks such as Redis replies run in the same turns).
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);

    const rowsPerEvent = 40, rowEvents = 250; // 10,000 rows, like one 512 KiB read
    const delivered: { part: SourceTransactionPart; turns: number }[] = [];
    const ac = new AbortController();
    const ended = Promise.withResolvers<void>();
    const run = new BinlogRun(
      adapter as unknown as ZongjiAdapter,
      schemas,
      { from: null, maxEvents: 100_000, idleMs: 60_000, serverOwnId: 1 },
      (part) => {
        delivered.push({ part, turns });
        return Promise.resolve();
      },
      ac.signal,
      (err) => err === undefined ? ended.resolve() : ended.reject(err),
    );
    run.startAt("binlog.000001", "start");
    run.started();

    const events: AnyBinlogEvent[] = [
      event("mariadbgtid", { gtid: "0-1-7", serverId: 1, nextPosition: 400 }),
    ];
    for (let i = 0; i < rowEvents; i++) {
      const rows = Array.from(
        { length: rowsPerEvent },
        (_, r) => ({ id: i * rowsPerEvent + r, v: `row ${r}` }),
      );
      events.push(event("writerows", { tableId: 7, rows, nextPosition: 0 }));
    }
    events.push(event("xid", { nextPosition: 9_000 }));
    const before = turns;
    adapter.burst(events);
    await new Promise<void>((resolve) => {
      const check = () => delivered.length > 0 ? resolve() : setImmediate(check);
      check();
    });
    ticking = false;
    ac.abort();
    await ended.promise;

    assert.equal(delivered.length, 1, "one transaction, one delivery");
    assert.equal(delivered[0].part.events.length, rowsPerEvent * rowEvents);
    const during = delivered[0].turns - before;
    // A turn every few hundred rows (ROWS_PER_TURN); without them the burst is decoded in one
    // go and the delivery comes before any turn.
    const expected = (rowsPerEvent * rowEvents) / 512;
    assert.ok(
      during >= expected,
      `the event loop turned ${during} times while 10,000 rows were decoded`,
    );
    assert.ok(adapter.pauses >= expected, `the connection was paused ${adapter.pauses} times`);
    // The rows are delivered in the binlog's order, whatever the turns (the sort keys are a
    // counter of decoding, so the rows' own ids are what shows a reordering).
    const ids = delivered[0].part.events.map((e) => Number(e.after![0]));
    assert.deepEqual(ids, Array.from({ length: rowsPerEvent * rowEvents }, (_, i) => i));
  } finally {
    await conn.end();
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
  }
});
