/**
 * The streaming contract for large transactions on a real PostgreSQL, at the source: the
 * same as MariaDB's (mysql_realtime_parts_test.ts). A transaction larger than a part comes
 * in parts marked `more` that carry the checkpoint before it, then a last part with its own
 * token (the commit LSN); positions continue across parts.
 */
import assert from "node:assert/strict";
import type { SourceTransactionPart } from "../../src/ports/streaming_source.ts";
import { PgLogicalSource } from "../../src/source/postgres/pg_logical_source.ts";
import { parseLsn } from "../../src/source/postgres/pgoutput_position.ts";
import { waitFor } from "../helpers/services.ts";
import { fixture } from "./pg_realtime_fixture.ts";

const PART = 100;
const BIG = 2 * PART + 50;

Deno.test("pg logical: a transaction larger than a part: parts marked more, one token", async () => {
  const fx = await fixture("rt_parts");
  const t = `${fx.prefix}_t`;
  const ac = new AbortController();
  let source: PgLogicalSource | null = null;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    source = await PgLogicalSource.open(fx.endpoint, fx.selection, {
      slotName: fx.slot,
      publicationName: fx.slot,
      heartbeatMs: 0,
      tableCheckMs: 0,
      maxPartEvents: PART,
    });
    const seen: SourceTransactionPart[] = [];
    const done = source.start(null, (tx) => {
      if (tx.events.length > 0 || tx.more) seen.push(tx);
      return Promise.resolve();
    }, ac.signal);
    done.catch(() => {});
    await fx.pg.query(`INSERT INTO "${t}" VALUES (0, 'first')`);
    await waitFor(() => seen.length === 1, { what: "the first transaction", timeoutMs: 20_000 });
    const firstToken = seen[0].checkpoint;
    await fx.pg.query(`INSERT INTO "${t}" SELECT i, 'big' FROM generate_series(1, ${BIG}) i`);
    await waitFor(() => seen.length === 4, { what: "the parts", timeoutMs: 20_000 });
    ac.abort();
    await done;

    const parts = seen.slice(1);
    assert.deepEqual(
      parts.map((p) => [p.events.length, p.more === true]),
      [[PART, true], [PART, true], [BIG - 2 * PART, false]],
    );
    // Empty deliveries (keepalives) may come between the transactions: a part carries the
    // last token delivered before it, which is not after the first transaction's.
    const last = parseLsn(parts[2].checkpoint);
    for (const p of parts.slice(0, -1)) {
      const at = parseLsn(p.checkpoint);
      assert.ok(at >= parseLsn(firstToken) && at < last, `${p.checkpoint} ${parts[2].checkpoint}`);
    }
    const keys = parts.flatMap((p) => p.events.map((e) => e.position.sortKey!));
    assert.equal(new Set(keys.map((k) => k.substring(0, 16))).size, 1, "one commit LSN");
    assert.deepEqual(keys, [...keys].sort());
    assert.equal(keys.length, BIG);
  } finally {
    ac.abort();
    await source?.close();
    await fx.cleanup();
  }
});
