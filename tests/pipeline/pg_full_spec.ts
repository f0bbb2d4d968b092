import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultExtractor, type PostgresConnection } from "../../src/config/mod.ts";
import { ReplicationLog } from "../../src/observe/replication_log.ts";
import { SnapshotProgress } from "../../src/observe/snapshot_progress.ts";
import type { FullSpec } from "../../src/pipeline/full_pipeline.ts";
import { PgConnector } from "../../src/source/postgres/connector.ts";
import { newPipelineState } from "../../src/pipeline/pipeline_state.ts";
import type { Fixture } from "./pg_realtime_fixture.ts";

/** A `full` run of the fixture's tables through the PostgreSQL connector, slot = fixture's. */
export function pgFullSpec(
  fx: Fixture,
  signal: AbortSignal,
  rows: { fetchRows: number; batchRows: number },
  over: Partial<Omit<FullSpec, "run">> & { resume?: boolean } = {},
): FullSpec {
  const { resume = false, ...rest } = over;
  const conn = {
    type: "POSTGRESQL",
    host: fx.endpoint.host,
    port: fx.endpoint.port,
    database: fx.endpoint.database,
    username: fx.endpoint.user,
    replicationSlots: [{ name: fx.slot, plugin: "pgoutput" }],
  } as PostgresConnection;
  const extractor = defaultExtractor();
  extractor.realtime.heartbeat.intervalMs = 200;
  const rt = fx.spec(signal);
  return {
    connector: new PgConnector(conn, { group: fx.naming.group, id: fx.prefix }, fx.endpoint),
    run: {
      selection: fx.selection,
      checkpoints: fx.checkpoints,
      resume,
      extractor,
      filter: null,
      sourceIdentity: null,
      log: new ReplicationLog(mkdtempSync(join(tmpdir(), "replicant-full-"))),
      warn: () => {},
    },
    sink: fx.sink,
    naming: fx.naming,
    snapshot: {
      threads: 2,
      ...rows,
      writeMode: "replace",
      retry: { maxRetries: 3, waitMs: 20 },
      skipTablesOnFailures: true,
      logRowLevelErrors: false,
      entry: { ...fx.entry },
    },
    realtime: {
      threads: rt.threads,
      batchRows: rt.batchRows,
      retry: rt.retry,
      skipTablesOnFailures: true,
      entry: fx.entry,
    },
    terminatePostSnapshot: false,
    progress: new SnapshotProgress({ write: () => {} }),
    signal,
    state: newPipelineState(),
    ...rest,
  };
}
