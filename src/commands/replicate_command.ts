import process from "node:process";
import { GapError, InDoubtError, StateError, UsageError } from "../core/errors.ts";
import { ReplicationLog } from "../observe/replication_log.ts";
import { SnapshotProgress } from "../observe/snapshot_progress.ts";
import type { ReplicantMetrics } from "../observe/replicant_metrics.ts";
import { newPipelineState, type PipelineState } from "../pipeline/pipeline_state.ts";
import { connectorOf } from "../source/connectors.ts";
import { redisSchemaDumpStore } from "../sink/redis/schema_dump_store.ts";
import { observeSettingsOf, RunObserver } from "../observe/run_observer.ts";
import { RunConsole } from "../observe/run_console.ts";
import {
  SnapshotPipeline,
  type SnapshotSettings,
  type WriteMode,
} from "../pipeline/snapshot_pipeline.ts";
import { RedisStreamSink } from "../sink/redis/redis_stream_sink.ts";
import { permissionError } from "../sink/redis/redis_permission_error.ts";
import type { RedisClient } from "../sink/redis/redis_connection.ts";
import { cleanupCommand, indoubtPath, readIndoubt } from "../pipeline/indoubt_log.ts";
import type { SnapshotSource } from "../ports/snapshot_source.ts";
import type { CommonOptions } from "./common_options.ts";
import {
  type ModeContext,
  realtimeSummary,
  runFullMode,
  runRealtimeMode,
} from "./realtime_modes.ts";
import {
  checkBeforeChanges,
  type IdState,
  idStreams,
  resnapshotCommand,
  startOver,
  tableNames,
} from "./replication_preflight.ts";
import { idDir, writeManifest } from "./manifest.ts";
import { retentionStreams, startRetention } from "./retention_run.ts";
import type { RetentionLoop } from "../sink/redis/stream_retention.ts";
import { recordSchemaDump } from "../schema/record_schema_dump.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import { formatProblem } from "../config/mod.ts";
import { fromOption } from "../config/config_error.ts";
import { loadReinitialize } from "../config/load_reinitialize.ts";
import type { JoiningTable } from "../pipeline/table_join.ts";
import { applySelectionOverrides, planTableChanges, recordSelection } from "./table_changes.ts";
import { jsonLine } from "../observe/log_event.ts";
import {
  configWarningEvent,
  entryOptionsOf,
  namingOf,
  redisTargetOf,
  replicationSelectionOf,
  type ReplicationSetup,
  resolveReplication,
  resolveSecrets,
} from "./replication_setup.ts";
import {
  type CheckpointStore,
  REALTIME_CHECKPOINT_FIELD,
  SNAPSHOT_COMPLETE_FIELD,
  SOURCE_SERVER_FIELD,
} from "../ports/checkpoint.ts";
import { RedisCheckpointStore } from "../sink/redis/checkpoint_store.ts";

export type ReplicationMode = "snapshot" | "realtime" | "full";

/**
 * Exit codes (docs/guarantees.md); `gap`: the source cannot deliver every change after the
 * checkpoint; `different`: `replicant verify` found a table that differs.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  skipped: 3,
  indoubt: 4,
  gap: 5,
  different: 6,
} as const;

export function writeModeOf(opts: CommonOptions): WriteMode {
  if (opts.replaceExisting || opts.replace) return "replace";
  if (opts.truncateExisting) return "truncate";
  if (opts.appendExisting) return "append";
  return "fail";
}

/**
 * `replicant snapshot|realtime|full`: resolves configuration, then runs the mode. The run
 * counts in `metrics` (its own unless the caller hands some in to read them), which its
 * metrics server serves: replications run side by side in one process count apart.
 */
export async function replicate(
  mode: ReplicationMode,
  conns: string[],
  opts: CommonOptions,
  metrics?: ReplicantMetrics,
): Promise<number> {
  if (opts.resume && opts.overwrite) {
    throw new StateError("--resume and --overwrite exclude each other: choose one");
  }
  if (opts.reinitialize !== undefined && (!opts.resume || mode === "snapshot")) {
    throw new UsageError(
      `--reinitialize ${opts.reinitialize}: changes the tables of a streaming id, so it goes ` +
        "with `realtime --resume` or `full --resume`",
    );
  }
  const reinit = opts.reinitialize === undefined
    ? null
    : fromOption("--reinitialize", () => loadReinitialize(opts.reinitialize!));
  const observe = observeSettingsOf(opts);
  progressInterval(opts); // a bad value stops the run before it changes anything
  // `arcion-sm://` values are fetched before anything connects.
  const setup = await resolveSecrets(resolveReplication(conns, opts));
  if (opts.resume) refuseWhileInDoubt(setup);
  if (mode !== "realtime" && setup.extractor.realtime.startPosition) {
    const w = {
      file: setup.extractor.file ?? "extractor",
      key: "realtime.start-position",
      message: `ignored by \`${mode}\`: ${
        mode === "full" ? "realtime starts exactly where the snapshot was taken" : "no realtime"
      }`,
    };
    process.stderr.write(
      observe.logFormat === "json"
        ? jsonLine(configWarningEvent(w), setup.id)
        : `replicant: warning: ${formatProblem(w)}\n`,
    );
  }
  const run = newPipelineState(metrics);
  const log = new ReplicationLog(idDir(setup.home, setup.id), observe.logFormat, setup.id);
  const out = new RunConsole(observe.logFormat, setup.id);
  const say = (level: "info" | "warn" | "error", text: string) => out.say(level, text);
  const controller = new AbortController();
  const stop = (signal: string) => {
    if (controller.signal.aborted) return;
    say("info", `\nreplicant: ${signal}: finishing the batch in flight, then stopping…\n`);
    log.info(`${signal} received: stopping`);
    controller.abort();
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  const target = redisTargetOf(setup.target);
  const streams = setup.applier.streams;
  const sink = await RedisStreamSink.open(target, {
    maxStreamLength: streams.maxStreamLength ?? 0,
    waitForReplicas: streams.waitForReplicas,
    waitForReplicasTimeoutMs: streams.waitForReplicasTimeoutMs,
    pauseAboveMemoryPercent: streams.pauseAboveMemoryPercent,
  });
  const naming = namingOf(setup);
  const checkpoints = new RedisCheckpointStore(
    sink.client,
    naming.checkpointKey(setup.target.mode === "cluster"),
  );
  const connector = connectorOf(setup.source, setup);
  const lag = mode === "snapshot"
    ? null
    : connector.lagSampler(() => checkpoints.get(REALTIME_CHECKPOINT_FIELD));
  /** The selected tables, once the source listed them. */
  let tables: string[] = [];
  const observer = new RunObserver(observe, {
    metrics: run.metrics,
    log,
    ping: () => sink.client.ping(),
    lagBytes: lag ? () => lag.sample() : undefined,
    announce: (text) => say("info", text),
    emit: (e) => out.emit(e),
  });
  let retention: RetentionLoop | null = null;
  try {
    await observer.start();
    const state = await decideState(setup, checkpoints, opts);
    const resume = state.resume;
    if (reinit && !resume) {
      throw new StateError(
        `--reinitialize ${reinit.file}: id ${JSON.stringify(setup.id)} has no state to change ` +
          "yet; start it without --reinitialize",
      );
    }
    // Tables a reinitialize file added or removed belong to every selection of the run.
    if (resume && mode !== "snapshot") applySelectionOverrides(setup, state.fields, reinit);
    const plan = {
      mode,
      setup,
      sink,
      state,
      writeMode: writeModeOf(opts),
      overwrite: opts.overwrite === true,
    };
    // Every check that can stop the run comes before any change: a run stopped by one
    // leaves slots, streams and state as they were, and a failed first run leaves no state
    // (inside the logged part of the run: a refusal is in error.log too).
    const preflight = await checkBeforeChanges(plan, checkpoints.key);
    setup.sourceServerVersion = preflight.serverVersion;
    tables = tableNames(preflight.tables);
    if (!resume) await startOver(plan, checkpoints, preflight, log);
    let joins: JoiningTable[] = [];
    if (mode !== "snapshot") {
      if (!resume) await recordSelection(checkpoints, preflight.tables);
      else {
        joins = (await planTableChanges(
          setup,
          checkpoints,
          state.fields,
          preflight.tables,
          reinit,
          log,
          (text) => say("info", text),
        )).joins;
      }
    }
    writeManifest(setup.home, {
      id: setup.id,
      group: setup.group,
      mode,
      source: setup.files.source,
      target: setup.files.target,
      extractor: setup.files.extractor,
      applier: setup.files.applier,
      filter: setup.files.filter,
      updatedAt: new Date().toISOString(),
    });
    log.info(`${mode} started (id ${setup.id}, group ${setup.group}${resume ? ", resuming" : ""})`);
    for (const w of preflight.warnings) {
      log.warn(w);
      say("warn", `replicant: warning: ${w}`);
    }
    const schemas = await recordSchemaDump(
      () => connector.readSchemas(replicationSelectionOf(setup)),
      redisSchemaDumpStore(sink.client),
      naming,
      log,
      preflight.tables,
    );
    retention = startRetention(
      setup.applier,
      sink,
      checkpoints,
      retentionStreams(
        setup.applier,
        naming,
        schemas,
        setup.extractor.realtime.ddlReplication.enable,
      ),
      {
        info: (message) => log.info(message),
        warn: (message) => {
          log.warn(message);
          say("warn", `replicant: warning: ${message}`);
        },
      },
      target,
      run.metrics,
    );
    if (mode === "snapshot") {
      return await runSnapshot(
        setup,
        sink,
        checkpoints,
        resume,
        opts,
        log,
        out,
        controller.signal,
        schemas,
        run,
      );
    }
    const ctx: ModeContext = {
      setup,
      sink,
      checkpoints,
      resume,
      log,
      signal: controller.signal,
      schemas,
      snapshot: snapshotSettingsOf(setup, opts),
      // Resuming, positions belong to the server recorded with them; else to this one.
      sourceIdentity: resume ? state.fields[SOURCE_SERVER_FIELD] ?? null : preflight.identity,
      changeStreams: idStreams(setup, preflight.tables, "realtime"),
      state: run,
      joins,
    };
    const streaming = () =>
      say(
        "info",
        `replicant: streaming changes of id ${setup.id} (SIGINT or SIGTERM stops cleanly)`,
      );
    if (mode === "realtime") {
      streaming();
      const outcome = await runRealtimeMode(ctx);
      out.printFormatted(realtimeSummary(outcome, out.format, setup.id));
      return finish(outcome.skippedTables, outcome.interrupted, setup, log, out);
    }
    const progress = progressOf(opts, out);
    const outcome = await runFullMode(
      ctx,
      snapshotSettingsOf(setup, opts),
      opts.terminatePostSnapshot === true,
      progress,
      streaming,
    );
    if (outcome.realtime) {
      out.printFormatted(realtimeSummary(outcome.realtime, out.format, setup.id));
    }
    if (opts.terminatePostSnapshot && !outcome.interrupted) {
      out.print(
        `Snapshot done; continue with realtime: replicant full … --id ${setup.id} --resume`,
      );
    }
    return finish(outcome.skipped, outcome.interrupted, setup, log, out);
  } catch (caught) {
    // A missing ACL right is named (file, user, right) instead of a bare NOPERM.
    let err = permissionError(caught, target) ?? caught;
    // A gap names the tables it affects and the command that takes them anew.
    if (err instanceof GapError) err = err.explained(tables, resnapshotCommand(setup));
    const message = (err as Error)?.message ?? String(err);
    observer.failed(message);
    log.fail(`${mode} stopped: ${message}`);
    throw err;
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
    await retention?.stop();
    await observer.stop();
    await lag?.close();
    await sink.close();
  }
}

/**
 * `--resume` with entries listed in the in-doubt file would trust a stream tail that may be
 * one of them (an entry that should have been undone): refuse, and say how to clean up (exit 4).
 */
function refuseWhileInDoubt(setup: ReplicationSetup): void {
  const file = indoubtPath(setup.home, setup.id);
  let entries;
  try {
    entries = readIndoubt(file);
  } catch (err) {
    throw new StateError(`Cannot read the in-doubt file: ${(err as Error).message}`);
  }
  if (entries.length === 0) return;
  throw new InDoubtError(
    `Cannot resume id ${JSON.stringify(setup.id)}: ${file} lists ${entries.length} in-doubt ` +
      `entr${entries.length === 1 ? "y" : "ies"} (of stream ${entries[0].stream}) left by a ` +
      `failed GLOBAL batch; resuming would treat them as replicated. Run \`${
        cleanupCommand(setup.id, setup.group)
      }\` first, then --resume.`,
    file,
    entries,
  );
}

/**
 * What --resume / --overwrite make of the id's state (read only: --overwrite forgets it
 * later, after every check passed); neither with existing state is an error.
 */
async function decideState(
  setup: ReplicationSetup,
  checkpoints: CheckpointStore,
  opts: CommonOptions,
): Promise<IdState> {
  const fields = await checkpoints.read();
  const exists = Object.keys(fields).length > 0;
  if (opts.overwrite) return { exists, resume: false, fields };
  if (opts.resume) return { exists, resume: exists, fields };
  if (exists) {
    throw new StateError(
      `Replication id ${JSON.stringify(setup.id)} (group ${
        JSON.stringify(setup.group)
      }) has state ` +
        `from an earlier run (key ${checkpoints.key} in Redis at ${setup.target.host}:${setup.target.port}).\n` +
        `Continue it with --resume, or forget it and start over with --overwrite.`,
    );
  }
  return { exists, resume: false, fields };
}

async function runSnapshot(
  setup: ReplicationSetup,
  sink: RedisStreamSink<RedisClient>,
  checkpoints: CheckpointStore,
  resume: boolean,
  opts: CommonOptions,
  log: ReplicationLog,
  out: RunConsole,
  signal: AbortSignal,
  schemas: SchemaHistory,
  run: PipelineState,
): Promise<number> {
  const state = resume ? await checkpoints.read() : {};
  if (state[SNAPSHOT_COMPLETE_FIELD] === "1") {
    out.print(
      `Snapshot of id ${
        JSON.stringify(setup.id)
      } is already complete. Use --overwrite to take it again.`,
    );
    return EXIT.ok;
  }
  const settings: SnapshotSettings = { ...snapshotSettingsOf(setup, opts), resume, schemas };
  const selection = replicationSelectionOf(setup);
  const source: SnapshotSource = await connectorOf(setup.source, setup).openSnapshot(
    selection,
    log,
  );
  const progress = progressOf(opts, out);
  try {
    const outcome = await new SnapshotPipeline(
      source,
      sink,
      namingOf(setup),
      checkpoints,
      settings,
      log,
      progress,
      signal,
      run,
    ).run();
    out.printFormatted(progress.summary());
    const skipped = outcome.tables.filter((t) => t.status === "skipped");
    if (outcome.interrupted) {
      out.print(`Stopped. Continue with --resume --id ${setup.id}.`);
      return EXIT.ok;
    }
    await checkpoints.write({ [SNAPSHOT_COMPLETE_FIELD]: "1" });
    log.info(`snapshot complete: ${outcome.tables.length} table(s), ${skipped.length} skipped`);
    if (skipped.length > 0) {
      out.print(
        `${skipped.length} table(s) skipped: ${
          skipped.map((t) => t.table).join(", ")
        } (see ${log.error})`,
        "warn",
      );
      return EXIT.skipped;
    }
    return EXIT.ok;
  } finally {
    await source.close();
  }
}

function snapshotSettingsOf(
  setup: ReplicationSetup,
  opts: CommonOptions,
): Omit<SnapshotSettings, "resume"> {
  const applier = setup.applier.snapshot;
  return {
    threads: Math.max(1, setup.extractor.snapshot.threads),
    fetchRows: setup.extractor.snapshot.fetchSizeRows,
    batchRows: applier.batchSizeRows,
    writeMode: writeModeOf(opts),
    retry: { maxRetries: applier.maxRetries, waitMs: applier.retryWaitDurationMs },
    skipTablesOnFailures: applier.skipTablesOnFailures,
    logRowLevelErrors: applier.logRowLevelErrors,
    entry: entryOptionsOf(setup),
  };
}

function progressOf(opts: CommonOptions, out: RunConsole): SnapshotProgress {
  return new SnapshotProgress(process.stderr, progressInterval(opts), {
    format: out.format,
    id: out.id,
  });
}

/** `--progress-interval SECONDS` in ms; undefined: the default of the output. */
function progressInterval(opts: CommonOptions): number | undefined {
  if (opts.progressInterval === undefined) return undefined;
  const seconds = Number(opts.progressInterval);
  if (!Number.isFinite(seconds) || seconds < 0.1) {
    throw new UsageError(
      `--progress-interval ${opts.progressInterval}: expected seconds ≥ 0.1 (e.g. 5 or 0.5)`,
    );
  }
  return Math.round(seconds * 1000);
}

/** Exit code of a finished or stopped run: 3 when tables were skipped. */
function finish(
  skipped: string[],
  interrupted: boolean,
  setup: ReplicationSetup,
  log: ReplicationLog,
  out: RunConsole,
): number {
  if (interrupted) out.print(`Stopped cleanly. Continue with --resume --id ${setup.id}.`);
  if (skipped.length > 0) {
    out.print(
      `${skipped.length} table(s) skipped: ${skipped.join(", ")} (see ${log.error})`,
      "warn",
    );
    return EXIT.skipped;
  }
  return EXIT.ok;
}
