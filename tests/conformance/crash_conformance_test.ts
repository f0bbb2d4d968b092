/**
 * Conformance, every source connector: `replicant full` killed with SIGKILL at random
 * moments of the snapshot and of realtime while a generator keeps writing known transactions
 * (and another writer a table outside the selection), resumed with `--resume` each time. At
 * the end every change is in its stream exactly once and in commit order, and replaying the
 * streams rebuilds every table exactly. PostgreSQL streams every table from one slot (from
 * the first logged transaction in any stream on, every change of every table is there);
 * MariaDB starts each table's realtime after the position of the snapshot that read it.
 *
 * The seed of a failing run is printed; `REPLICANT_TEST_SEED=<seed>` replays its
 * transactions and kill points.
 */
import { crashRun } from "../helpers/crash_run.ts";
import { CONNECTORS } from "../helpers/connector.ts";
import { seededTest } from "../helpers/test_seed.ts";

for (const c of CONNECTORS) {
  for (const snapshotKills of c.crashSnapshotKills) {
    // A kill during the snapshot: realtime must still start at the first snapshot's position
    // (rows copied before the kill were read there), so nothing committed in between is lost.
    seededTest(
      `crash (${c.name}): kill -9 ≥10 times ${
        snapshotKills > 0 ? "across snapshot and realtime" : "during realtime of full"
      }, --resume, exactly once`,
      (seed) =>
        crashRun({
          dialect: c.dialect,
          seed,
          snapshotKills,
          minTransactions: c.crashMinTransactions,
        }),
    );
  }
}
