import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { StateError, UsageError } from "../core/errors.ts";
import { qualifiedName } from "../core/table_schema.ts";
import type { LogEvent } from "../observe/log_event.ts";
import { RunConsole } from "../observe/run_console.ts";
import { logFormatOf } from "../observe/run_observer.ts";
import { formatCount, renderTable } from "../observe/text_table.ts";
import { type SnapshotTable, tableSelectionOf } from "../ports/snapshot_source.ts";
import type { VerifyPoint } from "../ports/verify_point.ts";
import {
  tableStreams,
  type TableVerdict,
  type VerifySettings,
  verifyTables,
} from "../pipeline/table_verifier.ts";
import { openRedisAdmin, type RedisClient } from "../sink/redis/redis_connection.ts";
import { redisStreamScan } from "../sink/redis/stream_pages.ts";
import { isNoSuchKey } from "../sink/redis/redis_error_class.ts";
import { permissionError } from "../sink/redis/redis_permission_error.ts";
import {
  type CheckpointStore,
  pendingJoinsOf,
  REALTIME_CHECKPOINT_FIELD,
  retentionRecordsOf,
  SNAPSHOT_COMPLETE_FIELD,
  snapshotPointsOf,
  STATE_MODE_FIELD,
} from "../ports/checkpoint.ts";
import { connectorOf } from "../source/connectors.ts";
import type { CommonOptions } from "./common_options.ts";
import { idDir } from "./manifest.ts";
import { EXIT } from "./replicate_command.ts";
import {
  entryOptionsOf,
  namingOf,
  redisTargetOf,
  type ReplicationSetup,
  resolveReplication,
  resolveSecrets,
  withOverrides,
} from "./replication_setup.ts";
import { applySelectionOverrides } from "./table_changes.ts";
import { RedisCheckpointStore } from "../sink/redis/checkpoint_store.ts";

/** How long verify waits for the replication to reach the point, by default (seconds). */
const DEFAULT_WAIT_SECONDS = 300;

/**
 * `replicant verify SRC_CONN DST_CONN --id ID`: reads the source at a consistent point P,
 * waits until the id's checkpoint has passed P, rebuilds each selected table from its
 * streams using the changes at or before P, and compares. Exit 0 when every table is equal,
 * 6 when one differs, 3 when none differs but some could not be verified (trimmed streams).
 * Files not given come from the id's manifest, as for `--resume`.
 */
export async function verify(conns: string[], opts: CommonOptions): Promise<number> {
  const format = logFormatOf(opts);
  const waitSeconds = waitTimeoutOf(opts);
  // The files the id's last run used are the defaults, as for --resume.
  const setup = await resolveSecrets(resolveReplication(conns, { ...opts, resume: true }));
  const out = new RunConsole(format, setup.id);
  const target = redisTargetOf(setup.target);
  const client = await openRedisAdmin(target, "replicant-verify");
  let point: VerifyPoint | null = null;
  const spillDir = join(opts.spillDir ?? idDir(setup.home, setup.id), `verify-${process.pid}`);
  try {
    const naming = namingOf(setup);
    const checkpoints = new RedisCheckpointStore(
      client,
      naming.checkpointKey(setup.target.mode === "cluster"),
    );
    const state = await checkpoints.read();
    requireReplicatedState(setup, checkpoints.key, state);
    // Tables a reinitialize file added or removed are the id's (or not) as for a run.
    const selection = withOverrides(
      tableSelectionOf(setup.filter),
      applySelectionOverrides(setup, state, null),
    );
    point = await connectorOf(setup.source, setup).openVerifyPoint(selection);
    const tables = selectTables(await point.source.tables(), opts.tables);
    out.say(
      "info",
      `replicant: verifying ${tables.length} table(s) of id ${setup.id} at ${point.description}`,
    );
    const checkpoint = state[REALTIME_CHECKPOINT_FIELD] !== undefined ||
        state[STATE_MODE_FIELD] !== "snapshot"
      ? await waitForCheckpoint(checkpoints, point, tables, waitSeconds, setup.id, out)
      : null;
    const settings: VerifySettings = {
      entry: entryOptionsOf(setup),
      naming,
      global: setup.applier.realtime.replayConsistency === "GLOBAL",
      spillDir,
      fetchRows: setup.extractor.snapshot.fetchSizeRows,
      incomplete: new Map(),
      // A table that joined (or was taken again) replays its changes after its snapshot's point.
      snapshotPoints: snapshotPointsOf(state),
      progress: (message) => out.say("info", `replicant: ${message}`),
    };
    const incomplete = await incompleteStreams(client, setup, state, tables, settings);
    // A table whose snapshot is being taken again (it joined the id) is not complete yet.
    for (const stream of pendingJoinsOf(state).keys()) {
      incomplete.set(stream, "its snapshot is being taken (the table joined the id)");
    }
    mkdirSync(spillDir, { recursive: true });
    const verdicts = await verifyTables(redisStreamScan(client), point, tables, {
      ...settings,
      incomplete,
    });
    const code = exitCodeOf(verdicts);
    printVerdicts(out, verdicts, point.description, checkpoint, code);
    return code;
  } catch (err) {
    // A missing ACL right is named (file, user, right) instead of a bare NOPERM.
    throw permissionError(err, target) ?? err;
  } finally {
    rmSync(spillDir, { recursive: true, force: true });
    await point?.close();
    client.disconnect();
  }
}

function waitTimeoutOf(opts: CommonOptions): number {
  if (opts.waitTimeout === undefined) return DEFAULT_WAIT_SECONDS;
  const s = Number(opts.waitTimeout);
  if (!Number.isFinite(s) || s < 0) {
    throw new UsageError(`--wait-timeout ${opts.waitTimeout}: expected seconds ≥ 0`);
  }
  return s;
}

/** The id must have replicated something, and a snapshot it took must be complete. */
function requireReplicatedState(
  setup: ReplicationSetup,
  key: string,
  state: Record<string, string>,
): void {
  const where = `key ${key} in Redis at ${setup.target.host}:${setup.target.port}`;
  if (Object.keys(state).length === 0) {
    throw new StateError(
      `No replication state for id ${JSON.stringify(setup.id)} (group ${
        JSON.stringify(setup.group)
      }): ${where} is missing. Run snapshot, realtime or full with --id ${setup.id} first, ` +
        "or check --id and --replication-group",
    );
  }
  if (state[SNAPSHOT_COMPLETE_FIELD] !== "1" && state[STATE_MODE_FIELD] !== "realtime") {
    throw new StateError(
      `The snapshot of id ${JSON.stringify(setup.id)} is not complete (${where}): ` +
        `finish it first (replicant ${
          state[STATE_MODE_FIELD] ?? "full"
        } … --id ${setup.id} --resume)`,
    );
  }
}

/** The tables named by `--tables` (qualified names, or their unique ends), else all. */
export function selectTables(all: SnapshotTable[], names: string[] | undefined): SnapshotTable[] {
  if (all.length === 0) {
    throw new UsageError("No table to verify: the filter selects no table of the source");
  }
  if (!names || names.length === 0) return all;
  const wanted = names.flatMap((n) => n.split(",")).map((n) => n.trim()).filter((n) => n);
  const picked = new Set<SnapshotTable>();
  for (const name of wanted) {
    const matches = all.filter((t) => {
      const q = qualifiedName(t.schema.id);
      return q === name || q.endsWith("." + name);
    });
    if (matches.length !== 1) {
      const known = all.map((t) => qualifiedName(t.schema.id));
      throw new UsageError(
        `--tables ${name}: ${
          matches.length === 0
            ? "no selected table has this name"
            : `ambiguous (${matches.map((t) => qualifiedName(t.schema.id)).join(", ")})`
        }; selected tables: ${known.slice(0, 20).join(", ")}${known.length > 20 ? ", …" : ""}`,
      );
    }
    picked.add(matches[0]);
  }
  return all.filter((t) => picked.has(t));
}

/**
 * Waits until the id's realtime checkpoint is at or past the point: every change the source
 * shows at the point is then in the streams. Returns the checkpoint reached.
 */
async function waitForCheckpoint(
  checkpoints: CheckpointStore,
  point: VerifyPoint,
  tables: SnapshotTable[],
  seconds: number,
  id: string,
  out: RunConsole,
): Promise<string> {
  const deadline = Date.now() + seconds * 1000;
  let nextNote = Date.now() + 10_000;
  let nextLook = Date.now() + 1000;
  for (;;) {
    const token = await checkpoints.get(REALTIME_CHECKPOINT_FIELD);
    if (token !== null && point.reached(token)) return token;
    // A replication that is stopped or idle may never pass the point: nothing to wait for
    // when the source's log holds no change of these tables before it.
    if (Date.now() >= nextLook && point.caughtUp) {
      if (await point.caughtUp(token, tables.map((t) => t.schema))) {
        out.say(
          "info",
          `replicant: the checkpoint ${
            token ?? "-"
          } is before ${point.description}, but no change of the verified tables lies between them`,
        );
        return token ?? "-";
      }
      nextLook = Date.now() + 2000;
    }
    if (Date.now() >= deadline) {
      throw new StateError(
        `The replication of id ${
          JSON.stringify(id)
        } has not reached ${point.description} after ${seconds} s ` +
          `(its checkpoint is ${token ?? "not written yet"}): is it running? Start it ` +
          `(replicant realtime|full … --id ${id} --resume) or give more --wait-timeout`,
      );
    }
    if (Date.now() >= nextNote) {
      out.say(
        "info",
        `replicant: waiting for the replication to reach ${point.description} (checkpoint ${
          token ?? "-"
        })`,
      );
      nextNote = Date.now() + 10_000;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Streams whose entries may be incomplete: trimmed by retention (recorded in the checkpoint
 * hash), or shortened by the applier's `max-stream-length`.
 */
async function incompleteStreams(
  client: RedisClient,
  setup: ReplicationSetup,
  state: Record<string, string>,
  tables: SnapshotTable[],
  settings: VerifySettings,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const r of retentionRecordsOf(state).values()) {
    out.set(
      r.stream,
      `trimmed by retention${r.through ? ` (entries below ${r.through} may be gone)` : ""}`,
    );
  }
  const cap = setup.applier.streams.maxStreamLength;
  if (cap === undefined) return out;
  const streams = new Set(tables.flatMap((t) => tableStreams(t.schema, settings)));
  for (const stream of streams) {
    if (out.has(stream)) continue;
    let info: unknown[];
    try {
      info = await client.call("XINFO", "STREAM", stream) as unknown[];
    } catch (err) {
      // No such stream: nothing was trimmed. Any other error (a missing right, a key that
      // is not a stream) leaves the question open, and a trimmed stream would compare as
      // DIFFERENT: it stops verify.
      if (isNoSuchKey(err)) continue;
      throw err;
    }
    const added = Number(info[info.indexOf("entries-added") + 1]);
    const length = Number(info[info.indexOf("length") + 1]);
    if (added > length) {
      out.set(
        stream,
        `max-stream-length ${cap} may have trimmed it (${added} entries added, ${length} left)`,
      );
    }
  }
  return out;
}

function exitCodeOf(verdicts: TableVerdict[]): number {
  if (verdicts.some((v) => v.status === "different")) return EXIT.different;
  if (verdicts.some((v) => v.status === "not_verified")) return EXIT.skipped;
  return EXIT.ok;
}

const RESULT = { equal: "equal", different: "DIFFERENT", not_verified: "NOT VERIFIED" } as const;

function printVerdicts(
  out: RunConsole,
  verdicts: TableVerdict[],
  at: string,
  checkpoint: string | null,
  code: number,
): void {
  const counts = { equal: 0, different: 0, not_verified: 0 };
  for (const v of verdicts) counts[v.status]++;
  if (out.format === "json") {
    for (const e of verdictEvents(verdicts)) out.result(e);
    out.result({
      level: code === EXIT.ok ? "info" : "warn",
      event: "verify_summary",
      fields: { at, checkpoint, tables: verdicts.length, ...counts, exit_code: code },
    });
    return;
  }
  const n = (
    v: TableVerdict,
    k: "sourceRows" | "rebuiltRows" | "missing" | "extra" | "different",
  ) => v.diff ? formatCount(v.diff[k]) : "-";
  out.printFormatted(
    renderTable(
      [
        "table",
        "source rows",
        "rebuilt rows",
        "missing",
        "extra",
        "different",
        "result",
        "details",
      ],
      verdicts.map((v) => [
        v.table,
        n(v, "sourceRows"),
        n(v, "rebuiltRows"),
        n(v, "missing"),
        n(v, "extra"),
        n(v, "different"),
        RESULT[v.status],
        v.reason ?? sampleText(v),
      ]),
    ),
  );
  out.print(
    `Compared at ${at}${checkpoint ? ` (replication checkpoint ${checkpoint})` : ""}: ` +
      `${verdicts.length} table(s), ${counts.equal} equal, ${counts.different} different, ` +
      `${counts.not_verified} not verified`,
    code === EXIT.ok ? "info" : "warn",
  );
}

function sampleText(v: TableVerdict): string {
  if (!v.diff) return "";
  const parts: string[] = [];
  for (const kind of ["missing", "extra", "different"] as const) {
    const keys = v.diff.samples[kind];
    if (keys.length > 0) parts.push(`${kind} ${keys.join(" ")}`);
  }
  return parts.join("; ");
}

/** json: one `verify_table` event per table. */
export function verdictEvents(verdicts: TableVerdict[]): LogEvent[] {
  return verdicts.map((v) => ({
    level: v.status === "equal" ? "info" : "warn",
    event: "verify_table",
    fields: {
      table: v.table,
      streams: v.streams,
      result: v.status,
      reason: v.reason,
      source_rows: v.diff?.sourceRows,
      rebuilt_rows: v.diff?.rebuiltRows,
      missing: v.diff?.missing,
      extra: v.diff?.extra,
      different: v.diff?.different,
      samples: v.diff?.samples,
    },
  }));
}
