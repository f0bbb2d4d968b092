import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { serviceEnv } from "../helpers/services.ts";
import type { DriverConfig } from "./pg_realtime_driver.ts";
import { fixture } from "./pg_realtime_fixture.ts";

const driver = fileURLToPath(new URL("./pg_realtime_driver.ts", import.meta.url));
const deno = fileURLToPath(new URL("../../scripts/deno", import.meta.url));

Deno.test("realtime: a 300k-row transaction arrives whole, in order, in a 200 MiB heap", async () => {
  const fx = await fixture("rt_large");
  const t = `${fx.prefix}_big`;
  const rows = 300_000;
  try {
    await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, payload text)`);
    await fx.pg.query(
      `INSERT INTO "${t}" SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, ${rows}) i`,
    );
    const stream = fx.stream(t);
    const env = serviceEnv();
    const config: DriverConfig = {
      pg: env.pg,
      redis: env.redis,
      prefix: fx.prefix,
      resume: false,
      batchRows: 1000,
      stopAt: { stream, length: rows },
    };
    // The old generation is capped: if the pipeline held the transaction, V8 would abort.
    const out = await new Deno.Command(deno, {
      args: ["run", "-A", "--v8-flags=--max-old-space-size=200", driver, JSON.stringify(config)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr) + stdout);
    const result = JSON.parse(stdout.trim().split("\n").pop()!);
    console.log(`300k-row transaction: peak RSS ${Math.round(result.vmHWMKiB / 1024)} MiB`);
    assert.equal(result.outcome.tables[0].changes, rows);
    assert.ok(result.vmHWMKiB / 1024 < 400, `peak RSS ${result.vmHWMKiB} KiB`);
    assert.equal(await fx.redis.xlen(stream), rows);
    const first = (await fx.redis.xrange(stream, "-", "+", "COUNT", 1))[0][0];
    const last = (await fx.redis.xrevrange(stream, "+", "-", "COUNT", 1))[0][0];
    const spanMs = Number(last.split("-")[0]) - Number(first.split("-")[0]);
    console.log(
      `written in ${spanMs} ms (${Math.round(rows / Math.max(spanMs, 1) * 1000)} rows/s)`,
    );
    // Order: every entry's id and sequence follow the insert order, one commit LSN.
    let start = "-";
    let expected = 0;
    let lsn: number | null = null;
    for (;;) {
      const page = await fx.redis.xrange(stream, start, "+", "COUNT", 20_000) as [
        string,
        string[],
      ][];
      for (const [, fields] of page) {
        const v = JSON.parse(fields[1]);
        assert.equal(v.after.id, expected + 1);
        assert.equal(v.source.sequence, expected);
        lsn ??= v.source.lsn;
        assert.equal(v.source.lsn, lsn);
        expected++;
      }
      if (page.length < 20_000) break;
      start = "(" + page[page.length - 1][0];
    }
    assert.equal(expected, rows);
    assert.equal(await fx.checkpoints.get("realtime:checkpoint"), result.outcome.checkpoint);
  } finally {
    await fx.cleanup();
  }
});
