/**
 * The schema versions of every table, kept in the schema dump stream so that a
 * run decodes and labels each change with the schema it was written under, also after a
 * restart. Versions are found by content (fingerprint): the same columns and keys always
 * map to the same version number, so a replay after a crash labels entries exactly as the
 * first pass did.
 *
 * @module
 */

import type { TableId, TableSchema } from "../core/table_schema.ts";
import {
  buildSchemaDumpEntry,
  newestPerTable,
  type SchemaDumpEntry,
  tableKeyOf,
} from "./schema_dump.ts";

/** Where a dump stream is kept (the sink implements it: Redis, `sink/redis/schema_dump_store.ts`). */
export interface SchemaDumpStore {
  /** Every entry of the stream, oldest first; none when it does not exist. */
  read(stream: string): Promise<SchemaDumpEntry[]>;
  /** Appends entries, all or none. */
  append(stream: string, entries: SchemaDumpEntry[]): Promise<void>;
}

/** The versions of one dump stream, in memory; `record` appends to the stream. */
export class SchemaHistory {
  readonly #byTable = new Map<string, SchemaDumpEntry[]>();

  private constructor(
    private readonly store: SchemaDumpStore | null,
    readonly stream: string,
    entries: SchemaDumpEntry[],
  ) {
    for (const e of entries) this.#add(e);
  }

  /** Reads the dump stream (empty when missing). */
  static async load(store: SchemaDumpStore, stream: string): Promise<SchemaHistory> {
    return new SchemaHistory(store, stream, await store.read(stream));
  }

  /** A history that is never written (tests, pure callers). */
  static inMemory(entries: SchemaDumpEntry[] = []): SchemaHistory {
    return new SchemaHistory(null, "", entries);
  }

  #add(e: SchemaDumpEntry): SchemaDumpEntry {
    const k = tableKeyOf(e.id);
    const list = this.#byTable.get(k) ?? [];
    list.push(e);
    this.#byTable.set(k, list);
    return e;
  }

  /** Every version of a table, oldest first. */
  versions(id: TableId): readonly SchemaDumpEntry[] {
    return this.#byTable.get(tableKeyOf(id)) ?? [];
  }

  /** The newest version of each table. */
  newest(): SchemaDumpEntry[] {
    return newestPerTable([...this.#byTable.values()].flat());
  }

  /** A version by number. */
  version(id: TableId, version: number): SchemaDumpEntry | undefined {
    return this.versions(id).find((e) => e.version === version);
  }

  /** The version recorded for the DDL at this source position (a replay meets it again). */
  atPosition(id: TableId, sortKey: string): SchemaDumpEntry | undefined {
    return this.versions(id).find((e) => e.sinceKey === sortKey);
  }

  /**
   * The version of this schema. `sinceKey` is the source position of the DDL that made it:
   * a replay finds the version the first pass recorded there. Otherwise the newest version
   * when it has the same content, else a new version (versions only grow, so the newest is
   * the current schema). New versions and DDL markers are written to the dump stream before
   * this returns, so no entry ever names a version the dump does not hold.
   */
  async record(
    schema: TableSchema,
    sinceKey: string | null = null,
    tsMs = Date.now(),
  ): Promise<{ entry: SchemaDumpEntry; created: boolean }> {
    const planned = this.#plan(schema, sinceKey, tsMs);
    if (planned.write) await this.#write([planned.entry]);
    return planned;
  }

  /** Records the schemas a run starts with (one MULTI); returns the versions it added. */
  async recordAll(tables: TableSchema[], tsMs = Date.now()): Promise<SchemaDumpEntry[]> {
    const planned = tables.map((t) => this.#plan(t, null, tsMs)).filter((p) => p.write);
    await this.#write(planned.map((p) => p.entry));
    return planned.map((p) => p.entry);
  }

  #plan(schema: TableSchema, sinceKey: string | null, tsMs: number) {
    const versions = this.versions(schema.id);
    const candidate = buildSchemaDumpEntry(schema, 0, tsMs, sinceKey);
    if (sinceKey !== null) {
      const exact = versions.find((e) =>
        e.sinceKey === sinceKey && e.fingerprint === candidate.fingerprint
      );
      if (exact) return { entry: exact, created: false, write: false };
    }
    let newest: SchemaDumpEntry | undefined;
    for (const e of versions) if (!newest || e.version >= newest.version) newest = e;
    if (newest && newest.fingerprint === candidate.fingerprint) {
      if (sinceKey === null) return { entry: newest, created: false, write: false };
      return { entry: this.#add({ ...newest, sinceKey, tsMs }), created: false, write: true };
    }
    const entry = this.#add({ ...candidate, version: (newest?.version ?? 0) + 1 });
    return { entry, created: true, write: true };
  }

  async #write(entries: SchemaDumpEntry[]): Promise<void> {
    if (this.store) await this.store.append(this.stream, entries);
  }

  /** `schema` labelled with its version (a copy; the version is part of the entries). */
  async label<T extends TableSchema>(schema: T, sinceKey: string | null = null): Promise<T> {
    const { entry } = await this.record(schema, sinceKey);
    return schema.version === entry.version ? schema : { ...schema, version: entry.version };
  }
}
