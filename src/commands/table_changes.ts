import { ConfigError, type ConfigProblem } from "../config/config_error.ts";
import { type ReinitializeConfig, reinitializeTableIds } from "../config/load_reinitialize.ts";
import { StateError } from "../core/errors.ts";
import { qualifiedName, type TableId, type TableSchema } from "../core/table_schema.ts";
import type { ReplicationLog } from "../observe/replication_log.ts";
import {
  type CheckpointStore,
  type JoinKind,
  pendingJoinsOf,
  REINIT_PENDING_PREFIX,
  SELECTION_OVERRIDES_FIELD,
  SELECTION_TABLES_FIELD,
  selectionOverridesOf,
  selectionOverridesValue,
  selectionTablesOf,
  selectionTablesValue,
  snapshotDoneField,
} from "../ports/checkpoint.ts";
import type { JoiningTable } from "../pipeline/table_join.ts";
import {
  namingOf,
  type ReplicationSetup,
  sameTable,
  type SelectionOverrides,
} from "./replication_setup.ts";

/** The tables a reinitialize file names, as ids of this id's source. */
function fileTables(setup: ReplicationSetup, file: ReinitializeConfig, names: string[]): TableId[] {
  return reinitializeTableIds(file, names, setup.source.type);
}

/**
 * The selection overrides of a resumed id (kept in its checkpoint), changed by a
 * reinitialize file: an added table leaves the removed ones and joins the added ones (when
 * the filter does not select it anyway), a removed one the other way round. Set on `setup`,
 * so that every selection of the run includes them.
 */
export function applySelectionOverrides(
  setup: ReplicationSetup,
  state: Record<string, string>,
  reinit: ReinitializeConfig | null,
): SelectionOverrides {
  const { add, remove } = selectionOverridesOf(state);
  if (reinit) {
    const without = (list: TableId[], id: TableId) => list.filter((t) => !sameTable(t, id));
    for (const id of fileTables(setup, reinit, reinit.add)) {
      const i = remove.findIndex((t) => sameTable(t, id));
      if (i >= 0) remove.splice(i, 1);
      if (!add.some((t) => sameTable(t, id))) add.push(id);
    }
    for (const id of fileTables(setup, reinit, reinit.remove)) {
      const kept = without(add, id);
      add.length = 0;
      add.push(...kept);
      if (!remove.some((t) => sameTable(t, id))) remove.push(id);
    }
  }
  setup.overrides = { add, remove };
  return setup.overrides;
}

/** What a resumed run does about the tables that entered or left the id's selection. */
export interface TableChanges {
  joins: JoiningTable[];
  added: string[];
  removed: string[];
}

/**
 * Compares the tables the id replicated at its last start with those selected now (filter
 * and reinitialize file): tables that entered join the id (snapshot, then their changes),
 * tables that left stop, the reinitialize file's `reinit-tables` are taken again. Each join
 * is recorded as pending in the checkpoint before anything is done for it, so a crash
 * before its snapshot is complete does it again; the selection is recorded with them.
 */
export async function planTableChanges(
  setup: ReplicationSetup,
  checkpoints: CheckpointStore,
  state: Record<string, string>,
  tables: TableSchema[],
  reinit: ReinitializeConfig | null,
  log: ReplicationLog,
  say: (text: string) => void,
): Promise<TableChanges> {
  const naming = namingOf(setup);
  const recorded = selectionTablesOf(state);
  const now = tables.map((t) => t.id);
  const has = (list: TableId[], id: TableId) => list.some((t) => sameTable(t, id));
  const problems: ConfigProblem[] = [];
  if (reinit) {
    const listed = (ids: TableId[]) => {
      const names = ids.slice(0, 10).map(qualifiedName).join(", ");
      return ids.length > 10 ? `${names}, … (${ids.length} in all)` : names || "none";
    };
    const where = `catalog ${reinit.catalog}${reinit.schema ? `, schema ${reinit.schema}` : ""}`;
    const problem = (key: string, message: string) =>
      problems.push({ file: reinit.file, key, message, option: "--reinitialize" });
    for (const id of fileTables(setup, reinit, reinit.add)) {
      if (!has(now, id)) {
        problem("add-tables", `${qualifiedName(id)}: no such table in the source (${where})`);
      }
    }
    for (const id of fileTables(setup, reinit, reinit.reinit)) {
      if (!has(now, id)) {
        problem(
          "reinit-tables",
          `${qualifiedName(id)}: not replicated by id ${setup.id} (neither selected by the ` +
            `filter nor added; ${where}); it replicates ${listed(now)}`,
        );
      }
    }
    // A removed table is one the id replicated at its last start (or removed before).
    const before = recorded ?? [];
    const removedBefore = selectionOverridesOf(state).remove;
    for (const id of fileTables(setup, reinit, reinit.remove)) {
      if (recorded !== null && !has(before, id) && !has(removedBefore, id)) {
        problem(
          "remove-tables",
          `${qualifiedName(id)}: not replicated by id ${setup.id} (${where}); it replicates ` +
            listed(before),
        );
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  // An id recorded before tables could join has nothing to compare with: it starts now.
  const added = recorded ? now.filter((id) => !has(recorded, id)) : [];
  const removed = recorded ? recorded.filter((id) => !has(now, id)) : [];
  const reinitIds = reinit
    ? fileTables(setup, reinit, reinit.reinit).map((id) => now.find((t) => sameTable(t, id))!)
    : [];
  const pending = pendingJoinsOf(state);
  const fresh = new Map<string, JoinKind>();
  for (const id of added) fresh.set(naming.snapshotStream(id), "add");
  for (const id of reinitIds) {
    const stream = naming.snapshotStream(id);
    if (!fresh.has(stream) && pending.get(stream) !== "add") fresh.set(stream, "reinit");
  }
  if (fresh.size > 0 && setup.applier.realtime.replayConsistency === "GLOBAL") {
    if ([...fresh.values()].includes("add")) {
      throw new StateError(
        `Id ${JSON.stringify(setup.id)} replicates with GLOBAL consistency, where every ` +
          "table shares one change stream: tables cannot join it while it streams (" +
          added.map(qualifiedName).join(", ") + "). Select them in the filter of a new id, " +
          "or start this id over with --overwrite --replace-existing.",
      );
    }
  }
  // A join whose table left the selection is dropped; one whose snapshot is done is over.
  const stale: string[] = [];
  const selected = new Set(now.map((id) => naming.snapshotStream(id)));
  for (const [stream] of pending) {
    if (fresh.has(stream)) continue;
    if (!selected.has(stream) || state[snapshotDoneField(stream)] === "1") {
      stale.push(REINIT_PENDING_PREFIX + stream);
      pending.delete(stream);
    }
  }
  // Old done marks go first: a crash before the pending marks are written leaves the tables
  // to be found again by the next resume, never marked done by an earlier snapshot.
  const fields: Record<string, string> = {
    [SELECTION_TABLES_FIELD]: selectionTablesValue(now),
  };
  if (setup.overrides) {
    fields[SELECTION_OVERRIDES_FIELD] = selectionOverridesValue(
      setup.overrides.add,
      setup.overrides.remove,
    );
  }
  const forget = [...stale, ...[...fresh.keys()].map(snapshotDoneField)];
  if (forget.length > 0) await checkpoints.forget(forget);
  for (const [stream, kind] of fresh) {
    fields[REINIT_PENDING_PREFIX + stream] = kind;
    pending.set(stream, kind);
  }
  await checkpoints.write(fields);
  const tell = (text: string) => {
    log.info(text);
    say(`replicant: ${text}`);
  };
  // Whether the file or the filter brought a table in or took it out, per table.
  const byFile = (key: "add" | "remove", id: TableId) =>
    reinit !== null && has(fileTables(setup, reinit, reinit[key]), id)
      ? `${reinit.file}: ${key}-tables`
      : "the filter";
  for (const id of added) {
    tell(
      `${qualifiedName(id)} entered the selection (${byFile("add", id)}): added: its snapshot ` +
        "is taken while the other tables stream, then its changes follow",
    );
  }
  for (const id of removed) {
    tell(
      `${qualifiedName(id)} left the selection (${byFile("remove", id)}): removed: its ` +
        "changes are no longer replicated; its streams stay",
    );
  }
  for (const id of reinitIds) {
    tell(`${qualifiedName(id)}: reinit-tables: its snapshot is taken again; its changes go on`);
  }
  if (reinit && reinit.refreshSchema.length > 0) {
    tell(
      `refresh-schema-tables (${reinit.refreshSchema.join(", ")}): every run reads the ` +
        "schemas of its tables at its start; nothing more to do",
    );
  }
  const joins: JoiningTable[] = [];
  for (const t of tables) {
    const kind = pending.get(naming.snapshotStream(t.id));
    if (kind !== undefined) joins.push({ id: t.id, kind });
  }
  return {
    joins,
    added: added.map(qualifiedName),
    removed: removed.map(qualifiedName),
  };
}

/** A new id records the tables it starts with (what a later `--resume` compares with). */
export async function recordSelection(
  checkpoints: CheckpointStore,
  tables: TableSchema[],
): Promise<void> {
  await checkpoints.write({
    [SELECTION_TABLES_FIELD]: selectionTablesValue(tables.map((t) => t.id)),
  });
}
