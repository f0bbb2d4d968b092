/**
 * End-to-end: `replicant full` from a private PostgreSQL that is shut down cleanly
 * (`pg_ctl stop -m fast`) and started again while replicant streams. The shutdown completes
 * at once (the walsender waits until its client confirms everything it sent, the shutdown
 * checkpoint included), replicant reconnects by itself, and every change lands exactly once.
 */
import { type RunningReplicant, scratchHome, startReplicant } from "../helpers/replicant.ts";
import { startPrivatePostgres } from "../helpers/private_postgres.ts";
import { waitFor } from "../helpers/services.ts";
import { seededTest, uniqueTag } from "../helpers/test_seed.ts";
import { pgSourceBed } from "../helpers/source_bed.ts";
import { deleteKeys, redisClient } from "../helpers/clients.ts";
import { assertReplicated, lastChangeThenStop, totalLength } from "../helpers/change_log.ts";

const ROWS = 500;

seededTest(
  "restart (pg): a clean shutdown of PostgreSQL under replicant completes; it reconnects, exactly once",
  async (seed) => {
    const server = await startPrivatePostgres({
      hba: ["host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"],
    });
    const tag = uniqueTag();
    const id = `restart-pg-${tag}`;
    const redis = redisClient();
    const bed = await pgSourceBed({
      prefix: "rpg",
      tag,
      id,
      tables: ["a", "b"],
      rows: () => ROWS,
      server: {
        host: server.host,
        port: server.port,
        user: "postgres",
        password: "",
        database: "postgres",
      },
    });
    const cdcStreams = Object.keys(bed.tables).map(bed.cdcStream);
    const generator = bed.generator(seed);
    const home = scratchHome();
    let run: RunningReplicant | null = null;
    try {
      generator.start();
      run = startReplicant([
        "full",
        bed.connFile(home, { extra: "max-retries: 100\nretry-wait-duration-ms: 100\n" }),
        home.redisConn,
        "--filter",
        home.write("filter.yaml", bed.filter),
        "--applier",
        home.write("applier.yaml", "include-schema: false\n"),
        "--id",
        id,
        "--home",
        home.dir,
        "--overwrite",
      ]);
      const current = run;
      let exited = false;
      current.done.then(() => (exited = true));
      const progress = async (n: number, what: string) => {
        const want = (await totalLength(redis, cdcStreams)) + n;
        await waitFor(async () => {
          if (exited) throw new Error(`replicant exited: ${(await current.done).stderr}`);
          return (await totalLength(redis, cdcStreams)) >= want;
        }, { what, timeoutMs: 60_000, intervalMs: 20 });
      };
      await progress(200, "changes before the restart");
      // The writer stops first: a commit cut off by the shutdown would be in doubt.
      await generator.stop();
      const t0 = performance.now();
      await server.shutdown("fast", 20);
      const ms = Math.round(performance.now() - t0);
      console.log(`clean shutdown under replicant: ${ms} ms`);
      await server.start();
      await bed.reconnect();
      generator.start();
      await progress(200, "changes after the restart");
      await lastChangeThenStop({ redis, generator, dialect: "pg", cdcStreams, run });
      run = null;
      await assertReplicated(redis, bed, generator.log, { minTransactions: 50 });
    } finally {
      if (run) {
        run.kill("SIGKILL");
        await run.done;
      }
      await generator.stop().catch(() => {});
      await bed.close().catch(() => {});
      await deleteKeys(redis, `${bed.snapStream("")}*`);
      await deleteKeys(redis, `replicate_io_*_default_${id}`);
      redis.disconnect();
      await server.stop();
    }
  },
);
