import type { TableId } from "./table_schema.ts";

export type NameDelimiter = "UNDERSCORE" | "DOT";

/** Stream and key names of a replication (docs/entry-format.md): pure, so every component (and the tests) agree on them. */
export class StreamNaming {
  readonly #sep: string;
  constructor(
    readonly replicationId: string,
    readonly group: string,
    delimiter: NameDelimiter = "UNDERSCORE",
    readonly splitStream = true,
  ) {
    this.#sep = delimiter === "DOT" ? "." : "_";
  }

  /** `<catalog>_<schema>_<table>`; MySQL has no schema: `<database>_<table>`. */
  snapshotStream(id: TableId): string {
    const parts = id.schema === null ? [id.catalog, id.table] : [id.catalog, id.schema, id.table];
    return parts.join(this.#sep);
  }

  /** EVENTUAL realtime stream of a table. */
  cdcStream(id: TableId): string {
    const base = this.snapshotStream(id);
    return this.splitStream ? `${base}${this.#sep}cdc_logs` : base;
  }

  /** GLOBAL realtime stream: all tables in commit order. */
  globalCdcStream(): string {
    return this.#internal("replicate_io_cdc_log");
  }

  schemaChangeStream(): string {
    return this.#internal("replicate_io_schema_change_log");
  }

  schemaDumpStream(): string {
    return this.#internal("replicate_io_replication_schema");
  }

  /**
   * The checkpoint hash (docs/guarantees.md, Checkpoint fields). On a Redis Cluster it carries the GLOBAL stream's name as
   * its hash tag (`replicate_io_checkpoint_<group>_<id>{replicate_io_cdc_log_<group>_<id>}`):
   * both live in one slot, so on one master, whose replicas receive the GLOBAL entries before
   * the checkpoint that follows them; a failover can then never keep a checkpoint and lose
   * the entries below it.
   */
  checkpointKey(cluster = false): string {
    const key = this.#internal("replicate_io_checkpoint");
    return cluster ? `${key}{${this.globalCdcStream()}}` : key;
  }

  #internal(prefix: string): string {
    return [prefix, this.group, this.replicationId].join(this.#sep);
  }
}
