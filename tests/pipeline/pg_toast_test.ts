/**
 * Unchanged TOAST values: PostgreSQL leaves a value stored out of line out of an UPDATE's new
 * row when it did not change. With REPLICA IDENTITY FULL the old row carries it, so entries
 * have the real value; otherwise the column holds the unavailable-value placeholder in the
 * column's declared type; a key column stored out of line comes with the old key.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/services.ts";
import { fixture, readCdc, startRealtime } from "./pg_realtime_fixture.ts";

const PLACEHOLDER = "__replicant_unavailable_value";

Deno.test("TOAST: unchanged values from the old row (FULL), else typed placeholders", async () => {
  const fx = await fixture("toast");
  const full = `${fx.prefix}_full`;
  const dflt = `${fx.prefix}_dflt`;
  const keyed = `${fx.prefix}_keyed`;
  // Values of 20 kB and more, stored out of line.
  const big = "long text ".repeat(3000);
  const doc = { items: Array.from({ length: 2000 }, (_, i) => ({ i, s: `item ${i}` })) };
  const nums = Array.from({ length: 6000 }, (_, i) => i * 7);
  const tags = Array.from({ length: 3000 }, (_, i) => `tag-${i}`);
  const blob = new Uint8Array(30_000).map((_, i) => (i * 31) % 256);
  const key = Array.from({ length: 2500 }, (_, i) => String.fromCharCode(97 + (i * 7) % 26))
    .join("");
  try {
    for (const t of [full, dflt]) {
      await fx.pg.query(
        `CREATE TABLE "${t}" (id int PRIMARY KEY, note text, big text, blob bytea, nums int[],
           tags text[], doc jsonb)`,
      );
      for (const c of ["big", "blob", "nums", "tags", "doc"]) {
        await fx.pg.query(`ALTER TABLE "${t}" ALTER COLUMN ${c} SET STORAGE EXTERNAL`);
      }
    }
    await fx.pg.query(`ALTER TABLE "${full}" REPLICA IDENTITY FULL`);
    await fx.pg.query(`CREATE TABLE "${keyed}" (k text PRIMARY KEY, n int)`);
    await fx.pg.query(`ALTER TABLE "${keyed}" ALTER COLUMN k SET STORAGE EXTERNAL`);
    const run = startRealtime(fx);
    for (const t of [full, dflt]) {
      await fx.pg.query(`INSERT INTO "${t}" VALUES (1, 'first', $1, $2, $3, $4, $5)`, [
        big,
        blob,
        nums,
        tags,
        JSON.stringify(doc),
      ]);
      await fx.pg.query(`UPDATE "${t}" SET note = 'second' WHERE id = 1`);
    }
    await fx.pg.query(`INSERT INTO "${keyed}" VALUES ($1, 1)`, [key]);
    await fx.pg.query(`UPDATE "${keyed}" SET n = 2`);
    for (const [t, n] of [[full, 2], [dflt, 2], [keyed, 2]] as const) {
      await waitFor(async () => (await fx.redis.xlen(fx.stream(t))) >= n, { what: t });
    }
    await run.stop();
    const real = {
      id: 1,
      note: "second",
      big,
      blob: btoa(String.fromCharCode(...blob)),
      nums,
      tags,
      doc: JSON.stringify(doc),
    };
    const [fullInsert, fullUpdate] = await readCdc(fx.redis, fx.stream(full));
    // jsonb prints its own spacing: compare parsed (its text form is tested with the types).
    const parsedDoc = (r: Record<string, unknown>) => ({
      ...r,
      doc: typeof r.doc === "string" ? JSON.parse(r.doc) : r.doc,
    });
    assert.deepEqual(parsedDoc(fullInsert.after!), parsedDoc({ ...real, note: "first" }));
    assert.equal(fullUpdate.op, "u");
    assert.deepEqual(parsedDoc(fullUpdate.after!), parsedDoc(real));
    assert.deepEqual(parsedDoc(fullUpdate.before!), parsedDoc({ ...real, note: "first" }));

    const [, dfltUpdate] = await readCdc(fx.redis, fx.stream(dflt));
    assert.equal(dfltUpdate.op, "u");
    assert.deepEqual(dfltUpdate.after, {
      id: 1,
      note: "second",
      big: PLACEHOLDER,
      blob: btoa(PLACEHOLDER),
      nums: [...new TextEncoder().encode(PLACEHOLDER)],
      tags: [PLACEHOLDER],
      doc: PLACEHOLDER,
    });

    const [, keyedUpdate] = await readCdc(fx.redis, fx.stream(keyed));
    assert.equal(keyedUpdate.op, "u", "the key did not change: an update, not delete + insert");
    assert.deepEqual(keyedUpdate.key, { k: key });
    assert.deepEqual(keyedUpdate.after, { k: key, n: 2 });
  } finally {
    await fx.cleanup();
  }
});
