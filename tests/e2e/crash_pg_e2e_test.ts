/**
 * End-to-end: `replicant full` from PostgreSQL, killed with SIGKILL at random moments of the
 * snapshot and of realtime while a generator keeps writing known transactions (and another
 * writer a table outside the selection), resumed with `--resume` each time. At the end every
 * change is in its stream exactly once and in commit order, and replaying the streams
 * rebuilds every table exactly. All tables stream from one slot: from the first logged
 * transaction in any stream on, every change of every table is there.
 */
import { crashRun } from "../helpers/crash_run.ts";
import { seededTest } from "../helpers/test_seed.ts";

seededTest(
  "crash (pg): kill -9 ≥10 times across snapshot and realtime, --resume, exactly once",
  (seed) => crashRun({ dialect: "pg", seed, snapshotKills: 3, minTransactions: 500 }),
);
