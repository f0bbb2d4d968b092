import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { serviceEnv, waitFor } from "../helpers/services.ts";
import type { DriverConfig } from "./pg_realtime_driver.ts";
import { assertStrictlyIncreasing, type Fixture, fixture, readCdc } from "./pg_realtime_fixture.ts";

const driver = fileURLToPath(new URL("./pg_realtime_driver.ts", import.meta.url));
const deno = fileURLToPath(new URL("../../scripts/deno", import.meta.url));

/** Starts the driver process; `ready` resolves once it has its signal handlers. */
function spawnDriver(config: DriverConfig) {
  const child = new Deno.Command(deno, {
    args: ["run", "-A", driver, JSON.stringify(config)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => markReady = r);
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      stdout += chunk;
      if (stdout.includes("READY")) markReady();
    }
  })();
  const stderr = new Response(child.stderr).text();
  const output = (async () => {
    const status = await child.status;
    await reading;
    markReady();
    return { code: status.code, stdout, stderr: await stderr };
  })();
  return { child, ready, output };
}

async function total(fx: Fixture, streams: string[]) {
  let n = 0;
  for (const s of streams) n += await fx.redis.xlen(s);
  return n;
}

Deno.test("crash: kill -9 of the replicating process, resumed three times, exactly once", async () => {
  const fx = await fixture("rt_kill");
  const tables = [`${fx.prefix}_a`, `${fx.prefix}_b`];
  const streams = tables.map((t) => fx.stream(t));
  const txs = 3000;
  try {
    for (const t of tables) {
      await fx.pg.query(`CREATE TABLE "${t}" (id int PRIMARY KEY, v text)`);
    }
    // Writer: one transaction per id pair, both tables, while the driver is killed.
    const writing = (async () => {
      for (let i = 1; i <= txs; i++) {
        await fx.pg.query(
          `WITH a AS (INSERT INTO "${tables[0]}" VALUES ($1, 'a')) INSERT INTO "${
            tables[1]
          }" VALUES ($1, 'b')`,
          [i],
        );
      }
    })();
    const env = serviceEnv();
    const config = (resume: boolean): DriverConfig => ({
      pg: env.pg,
      redis: env.redis,
      prefix: fx.prefix,
      resume,
      batchRows: 16,
    });
    for (let round = 0; round < 3; round++) {
      const seen = await total(fx, streams);
      const { child, ready, output } = spawnDriver(config(round > 0));
      await ready;
      await waitFor(async () => (await total(fx, streams)) >= Math.min(seen + 300, 2 * txs), {
        what: `progress in round ${round}`,
        timeoutMs: 30_000,
      });
      child.kill("SIGKILL");
      await output;
    }
    await writing;
    const { child, ready, output } = spawnDriver(config(true));
    await ready;
    await waitFor(async () => (await total(fx, streams)) >= 2 * txs, {
      what: "all changes",
      timeoutMs: 30_000,
    });
    child.kill("SIGTERM");
    const out = await output;
    assert.equal(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout.trim().split("\n").pop()!);
    assert.deepEqual(result.outcome.skippedTables, []);
    for (const s of streams) {
      const entries = await readCdc(fx.redis, s);
      assertStrictlyIncreasing(entries);
      assert.deepEqual(
        entries.map((e) => e.after!.id),
        Array.from({ length: txs }, (_, i) => i + 1),
      );
    }
  } finally {
    await fx.cleanup();
  }
});
