/**
 * End-to-end: `replicant full` from MariaDB, killed with SIGKILL at random moments of the
 * snapshot and of realtime while a generator keeps writing known transactions (and another
 * writer a table outside the selection), resumed with `--resume` each time. At the end every
 * change is in its stream exactly once and in commit order, and replaying the streams
 * rebuilds every table exactly. Each table's realtime starts after the position of the
 * snapshot that read it: from its first logged transaction on, every change is there once.
 */
import { crashRun } from "../helpers/crash_run.ts";
import { seededTest } from "../helpers/test_seed.ts";

// A kill during the snapshot: realtime must still start at the first snapshot's position
// (rows copied before the kill were read there), so nothing committed in between is lost.
seededTest(
  "crash (mariadb): kill -9 ≥10 times across snapshot and realtime, --resume, exactly once",
  (seed) => crashRun({ dialect: "mysql", seed, snapshotKills: 3, minTransactions: 300 }),
);

seededTest(
  "crash (mariadb): kill -9 ≥10 times during realtime of full, --resume, exactly once",
  (seed) => crashRun({ dialect: "mysql", seed, snapshotKills: 0, minTransactions: 300 }),
);
