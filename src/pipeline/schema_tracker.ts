import type { SourcePosition } from "../core/change_event.ts";
import { qualifiedName, type TableId, type TableSchema } from "../core/table_schema.ts";
import type { DdlChange, DdlSchemaSide } from "../schema/ddl_entry.ts";
import { buildSchemaDumpEntry, type SchemaDumpEntry, tableKeyOf } from "../schema/schema_dump.ts";
import type { SchemaHistory } from "../schema/schema_history.ts";
import type { InFlightTransaction } from "./checkpointer.ts";
import type { DdlStatement } from "../ports/streaming_source.ts";
import { REALTIME_SCHEMAS_FIELD } from "../ports/checkpoint.ts";

/** A change of a table's schema (or a DDL statement on it) in source order. */
export interface SchemaChange {
  change: DdlChange;
  /** True when the version in effect moved (false: a statement alone, e.g. TRUNCATE). */
  moved: boolean;
}

/**
 * The realtime side of schema versions: which version each table is at as changes are
 * processed, and at the newest checkpoint (saved with it); labels every schema object a
 * source hands out with its version, recording new versions in the history first.
 */
export class SchemaTracker {
  /** Per table key: the version changes are at, as processed. */
  #inEffect = new Map<string, SchemaDumpEntry>();
  /** Per table key: the version at the newest checkpoint. */
  readonly #committed = new Map<string, [TableId, number]>();
  /** JSON of the versions to save with the next checkpoint, when they changed. */
  #pendingJson: string | null = null;
  /** Each source schema object, labelled with its version. */
  #labelled = new WeakMap<TableSchema, TableSchema>();

  constructor(
    private readonly history: SchemaHistory | undefined,
    /** Told of every schema change and DDL statement, in source order. */
    private readonly onChange: (change: SchemaChange, tx: InFlightTransaction) => void,
    private readonly log: { info(message: string): void; warn(message: string): void },
  ) {}

  /**
   * The versions in effect at the checkpoint (`saved`, the REALTIME_SCHEMAS_FIELD), else the
   * newest of each table. Returns them (for sources that decode with them).
   */
  load(saved: string | null): SchemaDumpEntry[] {
    const history = this.history;
    if (!history) return [];
    const inEffect = new Map(history.newest().map((e) => [tableKeyOf(e.id), e]));
    if (saved) {
      let list: [string, string | null, string, number][] = [];
      try {
        list = JSON.parse(saved);
      } catch {
        this.log.warn(
          `checkpoint field ${REALTIME_SCHEMAS_FIELD} is not JSON; using the newest schemas`,
        );
      }
      for (const [catalog, schema, table, version] of list) {
        const id = { catalog, schema, table };
        const e = history.version(id, version);
        if (e) inEffect.set(tableKeyOf(id), e);
        else inEffect.delete(tableKeyOf(id));
      }
    }
    this.#inEffect = inEffect;
    for (const [k, e] of inEffect) this.#committed.set(k, [e.id, e.version]);
    this.#pendingJson = this.#json();
    return [...inEffect.values()];
  }

  /** The labelled copy of a schema object already seen (hot path). */
  labelled(schema: TableSchema): TableSchema | undefined {
    return this.#labelled.get(schema);
  }

  /** After a source restart: schema objects are new, the versions are those committed. */
  restart(): void {
    this.#labelled = new WeakMap();
  }

  /**
   * A schema object not seen before: its version (recorded in the history first when new),
   * and a change when it differs from the version in effect.
   */
  async label(
    schema: TableSchema,
    position: SourcePosition,
    tx: InFlightTransaction,
  ): Promise<TableSchema> {
    let labelled = schema;
    if (this.history) {
      const before = this.#inEffect.get(tableKeyOf(schema.id)) ?? null;
      const fingerprint = buildSchemaDumpEntry(schema, 0, 0).fingerprint;
      const after = before?.fingerprint === fingerprint
        ? before
        : (await this.history.record(schema, position.sortKey ?? null)).entry;
      if (after !== before) this.#changed(schema.id, before, after, "", position, tx);
      if (schema.version !== after.version) labelled = { ...schema, version: after.version };
    }
    this.#labelled.set(schema, labelled);
    return labelled;
  }

  /**
   * A DDL statement from the source: a new version, a dropped table, or the statement
   * alone. Returns the labelled schema after it (null: dropped or unchanged).
   */
  async statement(d: DdlStatement, tx: InFlightTransaction): Promise<TableSchema | null> {
    const before = this.#inEffect.get(tableKeyOf(d.table)) ?? null;
    let after: SchemaDumpEntry | null = d.dropped ? null : before;
    let labelled: TableSchema | null = null;
    if (d.after) {
      after = this.history
        ? (await this.history.record(d.after, d.position.sortKey ?? null)).entry
        : null;
      labelled = after && d.after.version !== after.version
        ? { ...d.after, version: after.version }
        : d.after;
      this.#labelled.set(d.after, labelled);
    }
    this.#changed(d.table, before, after, d.statement, d.position, tx);
    return labelled;
  }

  /** A transaction is behind the checkpoint: the versions it moved are committed. */
  committed(tx: InFlightTransaction): void {
    if (!tx.schemas) return;
    for (const [key, version] of tx.schemas) {
      const id = this.#committed.get(key)?.[0] ?? idOfKey(key);
      if (version === null) this.#committed.delete(key);
      else this.#committed.set(key, [id, version]);
    }
    this.#pendingJson = this.#json();
  }

  /** The JSON to save with the checkpoint being written, or null when unchanged. */
  pending(): string | null {
    return this.#pendingJson;
  }

  /** `json` (from `pending`) was saved. */
  saved(json: string): void {
    if (this.#pendingJson === json) this.#pendingJson = null;
  }

  #json(): string {
    return JSON.stringify(
      [...this.#committed.values()].map(([id, v]) => [id.catalog, id.schema, id.table, v]),
    );
  }

  #changed(
    id: TableId,
    before: SchemaDumpEntry | null,
    after: SchemaDumpEntry | null,
    statement: string,
    position: SourcePosition,
    tx: InFlightTransaction,
  ): void {
    const moved = after !== before;
    if (moved) {
      const key = tableKeyOf(id);
      if (after) this.#inEffect.set(key, after);
      else this.#inEffect.delete(key);
      (tx.schemas ??= new Map()).set(key, after ? after.version : null);
      this.log.info(
        `schema of ${qualifiedName(id)}: ${before ? `v${before.version}` : "new"} -> ${
          after ? `v${after.version}` : "dropped"
        }${statement ? ` (${statement.slice(0, 80)})` : ""}`,
      );
    } else if (statement === "") return;
    const side = (e: SchemaDumpEntry | null): DdlSchemaSide | null =>
      e ? { version: e.version, columns: e.columns } : null;
    this.onChange({
      change: { table: id, statement, before: side(before), after: side(after), position },
      moved,
    }, tx);
  }
}

function idOfKey(key: string): TableId {
  const [catalog, schema, table] = JSON.parse(key) as [string, string | null, string];
  return { catalog, schema, table };
}
