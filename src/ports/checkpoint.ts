/**
 * The checkpoint hash of a replication id: every field name it holds, and the typed reads of
 * the fields that carry structure. Nothing else spells a field name, so the hash's layout is
 * read in one place. The store itself is a port: the sink that keeps the data keeps the
 * checkpoint next to it (Redis: one hash per id).
 */
import type { TableId } from "../core/table_schema.ts";

/** Replication state of one id: a hash of small string fields. */
export interface CheckpointStore {
  readonly key: string;
  exists(): Promise<boolean>;
  read(): Promise<Record<string, string>>;
  get(field: string): Promise<string | null>;
  /** Written only after the data it describes has been accepted by the sink. */
  write(fields: Record<string, string>): Promise<void>;
  /** Removes some fields (state that described something now gone). */
  forget(fields: string[]): Promise<void>;
  clear(): Promise<void>;
}

/** When the id's state was created (written once both connections work). */
export const STATE_CREATED_FIELD = "state:created";
/** The mode the id was created for: `snapshot`, `realtime` or `full`. */
export const STATE_MODE_FIELD = "state:mode";

/** Field of the checkpoint hash holding the realtime resume token. */
export const REALTIME_CHECKPOINT_FIELD = "realtime:checkpoint";

/**
 * Checkpoint field of PostgreSQL: the LSN where this id's slot began for it (its consistent
 * point, or its position when a new run found it), what the slot must still deliver from
 * while no realtime checkpoint exists.
 */
export const SLOT_START_FIELD = "realtime:slot-start";

/**
 * Field of the checkpoint hash holding the schema version of each table at the checkpoint
 * (JSON `[[catalog, schema, table, version], …]`), so a resume decodes and labels the
 * changes it replays with the schemas they were written under.
 */
export const REALTIME_SCHEMAS_FIELD = "realtime:schemas";

/** Checkpoint field of the source server the positions belong to. */
export const SOURCE_SERVER_FIELD = "source:server";

/** Per stream: the id of its newest entry when the source moved to another server. */
export const POSITIONS_FROM_PREFIX = "realtime:positions-from:";

/** The recorded tails of earlier moves, from the checkpoint's fields. */
export function positionsFrom(fields: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(fields)) {
    if (k.startsWith(POSITIONS_FROM_PREFIX)) out.set(k.slice(POSITIONS_FROM_PREFIX.length), v);
  }
  return out;
}

/**
 * Prefix of the checkpoint fields, one per cdc stream, whose value is the sort key through
 * which that stream's changes are already in the table's snapshot stream (MySQL `full`; a
 * PostgreSQL `full` whose keyless table was taken again from a fresh snapshot).
 */
export const SKIP_THROUGH_FIELD_PREFIX = "snapshot:skip-through:";

/** Checkpoint fields of `full`. */
export const SNAPSHOT_COMPLETE_FIELD = "snapshot:complete";
export const SNAPSHOT_CONSISTENT_POINT_FIELD = "snapshot:consistent-point";
/**
 * The skip-through fields of a checkpoint, by cdc stream (see SKIP_THROUGH_FIELD_PREFIX). An
 * empty mark was dropped when the source moved to another server.
 */
export function skipThroughOf(state: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(state)) {
    if (k.startsWith(SKIP_THROUGH_FIELD_PREFIX) && v !== "") {
      out.set(k.slice(SKIP_THROUGH_FIELD_PREFIX.length), v);
    }
  }
  return out;
}

/** Field of the checkpoint hash that marks a table's snapshot as complete. */
export const snapshotDoneField = (stream: string) => `snapshot:done:${stream}`;

/** Checkpoint fields that say whose source resources the id uses (and SOURCE_SERVER_FIELD). */
export const SOURCE_SLOT_FIELD = "source:slot";
export const SOURCE_PUBLICATION_FIELD = "source:publication";

/**
 * Which streams of an id retention trimmed, and up to where: fields of the id's checkpoint
 * hash, `retention:trimmed:<stream>` → `{"through":"<id>","at":"<time>"}`, where entries
 * with ids below `through` may be gone. Each is written before the trim it describes, so a
 * crash between the two leaves a record that says a little more than happened, never less.
 * `replicant verify` reads them to name the tables it cannot rebuild.
 */

export const RETENTION_FIELD_PREFIX = "retention:trimmed:";

export interface RetentionRecord {
  stream: string;
  /** Entries below this id may have been trimmed (null: the record is damaged). */
  through: string | null;
  at: string;
}

export function retentionField(stream: string): string {
  return RETENTION_FIELD_PREFIX + stream;
}

export function retentionValue(through: string, at = new Date()): string {
  return JSON.stringify({ through, at: at.toISOString() });
}

/** The records among the fields of a checkpoint hash. */
export function retentionRecordsOf(state: Record<string, string>): Map<string, RetentionRecord> {
  const out = new Map<string, RetentionRecord>();
  for (const [field, value] of Object.entries(state)) {
    if (!field.startsWith(RETENTION_FIELD_PREFIX)) continue;
    const stream = field.slice(RETENTION_FIELD_PREFIX.length);
    let parsed: { through?: unknown; at?: unknown } = {};
    try {
      parsed = JSON.parse(value);
    } catch {
      // A damaged record still says the stream was trimmed.
    }
    out.set(stream, {
      stream,
      through: typeof parsed.through === "string" ? parsed.through : null,
      at: typeof parsed.at === "string" ? parsed.at : "",
    });
  }
  return out;
}

/**
 * The tables the id replicated at its last start (JSON `[[catalog, schema, table], …]`): a
 * `--resume` compares them with the tables its filter (and reinitialize file) selects now, so
 * tables that entered the selection join and tables that left it stop.
 */
export const SELECTION_TABLES_FIELD = "selection:tables";

/** The tables of a SELECTION_TABLES_FIELD value; null when absent or damaged. */
export function selectionTablesOf(state: Record<string, string>): TableId[] | null {
  const text = state[SELECTION_TABLES_FIELD];
  if (text === undefined) return null;
  try {
    const v = JSON.parse(text);
    return Array.isArray(v) ? v.map((t) => tableIdOf(t as TableTriple)) : null;
  } catch {
    return null;
  }
}

/** The SELECTION_TABLES_FIELD value of `tables`. */
export function selectionTablesValue(tables: readonly TableId[]): string {
  return JSON.stringify(tables.map(tableTriple));
}

/** How the selection fields write a table: `[catalog, schema, table]`. */
type TableTriple = [string, string | null, string];
const tableTriple = (id: TableId): TableTriple => [id.catalog, id.schema, id.table];
const tableIdOf = ([catalog, schema, table]: TableTriple): TableId => ({
  catalog,
  schema,
  table,
});

/**
 * Tables a reinitialize file added although the filter does not select them, and tables it
 * removed although the filter selects them (JSON `{"add":[[c,s,t],…],"remove":[…]}`): they
 * stay so until another reinitialize file says otherwise.
 */
export const SELECTION_OVERRIDES_FIELD = "selection:overrides";

/** The SELECTION_OVERRIDES_FIELD value of tables added and removed by reinitialize files. */
export function selectionOverridesValue(add: readonly TableId[], remove: readonly TableId[]) {
  return JSON.stringify({ add: add.map(tableTriple), remove: remove.map(tableTriple) });
}

/** The tables of a SELECTION_OVERRIDES_FIELD value (a damaged record reads as none). */
export function selectionOverridesOf(
  state: Record<string, string>,
): { add: TableId[]; remove: TableId[] } {
  try {
    const saved = JSON.parse(state[SELECTION_OVERRIDES_FIELD] ?? "{}") as {
      add?: TableTriple[];
      remove?: TableTriple[];
    };
    return { add: (saved.add ?? []).map(tableIdOf), remove: (saved.remove ?? []).map(tableIdOf) };
  } catch {
    return { add: [], remove: [] };
  }
}

/**
 * Per snapshot stream: the table joins the id (`add`: its snapshot and cdc streams start
 * anew) or has its snapshot taken again (`reinit`: its cdc stream goes on). Written before
 * anything is done for it, removed once its snapshot is marked done, so a crash in between
 * does it again.
 */
export const REINIT_PENDING_PREFIX = "reinit:pending:";

/** Per cdc stream: the sort key through which the table's snapshot stream holds its changes. */
export const SNAPSHOT_POINT_PREFIX = "snapshot:point:";

export type JoinKind = "add" | "reinit";

/** The pending joins of a checkpoint, by snapshot stream. */
export function pendingJoinsOf(state: Record<string, string>): Map<string, JoinKind> {
  const out = new Map<string, JoinKind>();
  for (const [k, v] of Object.entries(state)) {
    if (k.startsWith(REINIT_PENDING_PREFIX) && (v === "add" || v === "reinit")) {
      out.set(k.slice(REINIT_PENDING_PREFIX.length), v);
    }
  }
  return out;
}

/** The snapshot points of a checkpoint, by cdc stream. */
export function snapshotPointsOf(state: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(state)) {
    if (k.startsWith(SNAPSHOT_POINT_PREFIX) && v !== "") {
      out.set(k.slice(SNAPSHOT_POINT_PREFIX.length), v);
    }
  }
  return out;
}
