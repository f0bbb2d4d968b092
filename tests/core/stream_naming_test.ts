import assert from "node:assert/strict";
import { StreamNaming } from "../../src/core/stream_naming.ts";
import { keySlot } from "../../src/sink/redis/key_slot.ts";

Deno.test("stream names follow docs/entry-format.md", () => {
  const n = new StreamNaming("orders", "g1");
  const pg = { catalog: "shop", schema: "public", table: "t" };
  const my = { catalog: "shop", schema: null, table: "t" };
  assert.equal(n.snapshotStream(pg), "shop_public_t");
  assert.equal(n.snapshotStream(my), "shop_t");
  assert.equal(n.cdcStream(pg), "shop_public_t_cdc_logs");
  assert.equal(n.globalCdcStream(), "replicate_io_cdc_log_g1_orders");
  assert.equal(n.schemaChangeStream(), "replicate_io_schema_change_log_g1_orders");
  assert.equal(n.schemaDumpStream(), "replicate_io_replication_schema_g1_orders");
  assert.equal(n.checkpointKey(), "replicate_io_checkpoint_g1_orders");
});

Deno.test("DOT delimiter and split-stream false", () => {
  const n = new StreamNaming("id", "default", "DOT", false);
  const pg = { catalog: "shop", schema: "public", table: "t" };
  assert.equal(n.snapshotStream(pg), "shop.public.t");
  assert.equal(n.cdcStream(pg), "shop.public.t");
  assert.equal(new StreamNaming("id", "default", "DOT").cdcStream(pg), "shop.public.t.cdc_logs");
  assert.equal(n.globalCdcStream(), "replicate_io_cdc_log.default.id");
});

Deno.test("on a Redis Cluster the checkpoint shares the GLOBAL stream's hash slot", () => {
  for (const n of [new StreamNaming("orders", "g1"), new StreamNaming("id", "default", "DOT")]) {
    const key = n.checkpointKey(true);
    assert.equal(key, `${n.checkpointKey()}{${n.globalCdcStream()}}`);
    assert.equal(keySlot(key), keySlot(n.globalCdcStream()));
    assert.notEqual(keySlot(n.checkpointKey()), keySlot(n.globalCdcStream()));
  }
});
