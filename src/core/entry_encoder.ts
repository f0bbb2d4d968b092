import type { ChangeEvent, EventRows, Op, RowFragments, SourcePosition } from "./change_event.ts";
import { connectSchema, qualifiedName, type TableId, type TableSchema } from "./table_schema.ts";
import { ByteSlice, type EntryField, WrappedField } from "./entry_field.ts";
import type { JsonRowBatch } from "./json_row_batch.ts";
import { copyBytes as put } from "./byte_copy.ts";
import { type ArenaBlock, ByteArena } from "./byte_arena.ts";

export type MessageFormat = "compact" | "extended" | "fields";
/** A connector's name, `source.connector` of its entries (`postgresql`, `mysql`). */
export type Connector = string;

/** A field of an entry's `source` block and its schema type (`int64`, `string`, …). */
export type PositionField = readonly [field: string, type: string];

export interface EntryOptions {
  format: MessageFormat;
  includeSchema: boolean;
  tombstones: boolean;
  connector: Connector;
  /** The position fields the connector adds to `source`, for the entry's `schema` half. */
  positionFields: readonly PositionField[];
  /** `source.connector` when not `connector` (Arcion's `MYSQL`, `POSTGRESQL`, …). */
  connectorName?: string;
  replicationId: string;
  /** `source.version`. */
  version: string;
  /**
   * The key of a table without a primary or unique key: its columns (default), or Arcion's
   * literal `default`.
   */
  keylessKey?: "all-columns" | "default";
}

/** Start of a `source` block, up to its `"ts_ms":`. */
export function sourceOpen(
  options: Pick<EntryOptions, "connector" | "connectorName" | "replicationId" | "version">,
): string {
  return `{"version":${JSON.stringify(options.version)},"connector":${
    JSON.stringify(options.connectorName ?? options.connector)
  },"name":${JSON.stringify(options.replicationId)},"ts_ms":`;
}

/** The `db`, `schema` and `table` fields of a `source` block. */
export function sourceTableFields(id: TableId): string {
  return `"db":${JSON.stringify(id.catalog)},"schema":${JSON.stringify(id.schema)},"table":${
    JSON.stringify(id.table)
  }`;
}

const utf8 = new TextEncoder();

/**
 * A table's constant entry parts as UTF-8, built on its first encodeReadBatch, merged where
 * they meet so a row costs as few copies as possible: a key is `keyStart`, its fragments
 * with `keyPrefixes[1…]` between them, `keyEnd`; a value is `valueStart`, the row's
 * fragments with `columnPrefixes[1…]` between them, then the chunk's end (`rowEnd`, then the
 * rest of the payload and the schema half's `}` in compact and extended).
 */
interface BytePlan {
  keyStart: Uint8Array;
  keyPrefixes: Uint8Array[];
  keyEnd: Uint8Array;
  valueStart: Uint8Array;
  columnPrefixes: Uint8Array[];
  rowEnd: string;
  /** The `}` closing a schema half written into the value, if any. */
  valueClose: string;
  consts: Record<
    | "default"
    | "key"
    | "value"
    | "op"
    | "r"
    | "table"
    | "before"
    | "null"
    | "after"
    | "source"
    | "ts_ms"
    | "tableName",
    ByteSlice
  >;
  /** Constant bytes of one row, apart from the per-chunk end of its value. */
  perRow: number;
  /** Streamed changes (see #encodeBytes): the payload's constant parts. */
  beforeOpen: Uint8Array;
  afterOpen: Uint8Array;
  sourceOpen: Uint8Array;
  sourceHead: Uint8Array;
  sourceStreaming: Uint8Array;
  opOpen: Uint8Array;
  tsOpen: Uint8Array;
  ops: Record<Op, ByteSlice>;
}

/** Writes `s` as UTF-8 (ASCII by a loop; `out` has room for 3 bytes per unit). */
function writeAscii(out: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return p + utf8.encodeInto(s.substring(i), out.subarray(p)).written;
    out[p++] = c;
  }
  return p;
}

/** Value of a tombstone entry (it follows a delete when tombstones are on). */
export const TOMBSTONE_VALUE = "default";

/**
 * Turns change events of one table into Redis stream field/value lists. Everything that
 * does not depend on the row (schemas, JSON key prefixes, source header) is built once
 * per table, so encoding a row is string concatenation only.
 */
/** Fields are strings unless the encoder wraps schema halves (see WrappedField). */
type FieldOf<W extends boolean> = W extends true ? EntryField : string;

export class TableEntryEncoder<W extends boolean = false> {
  readonly #format: MessageFormat;
  readonly #tombstones: boolean;
  readonly #columnPrefixes: string[];
  readonly #keyPrefixes: string[];
  readonly #keyColumns: number[];
  readonly #keySchemaOpen: string;
  readonly #valueSchemaOpen: string;
  readonly #sourceOpen: string;
  readonly #sourceTableSnapshot: string;
  readonly #sourceTableStreaming: string;
  readonly #tableName: string;
  readonly #wrap: boolean;
  #bytes: BytePlan | null = null;
  /**
   * The arena block the entries of the last `encode` point into (null: none); hold it while
   * they wait for Redis, then release it.
   */
  lastBlock: ArenaBlock | null = null;

  /**
   * `wrap`: schema-wrapped keys and values come as WrappedField (writers that encode the
   * constant schema half once); otherwise every field is a string.
   */
  constructor(
    readonly table: TableSchema,
    options: EntryOptions,
    wrap?: W,
    /**
     * Where `encode` writes byte rows (the caller holds and releases `lastBlock` in it): a run
     * hands its own, shared by its encoders; an encoder not handed one has its own.
     */
    private readonly arena: ByteArena = new ByteArena(),
  ) {
    this.#wrap = wrap === true;
    this.#format = options.format;
    this.#tombstones = options.tombstones;
    const cols = table.columns;
    this.#columnPrefixes = cols.map((c, i) => (i === 0 ? "{" : ",") + JSON.stringify(c.name) + ":");
    this.#keyColumns = table.hasKey || options.keylessKey !== "default" ? table.keyColumns : [];
    this.#keyPrefixes = this.#keyColumns.map((ci, i) =>
      (i === 0 ? "{" : ",") + JSON.stringify(cols[ci].name) + ":"
    );
    this.#tableName = qualifiedName(table.id);
    const ns = [options.replicationId, table.id.catalog, table.id.schema, table.id.table]
      .filter((p) => p !== null).join(".");
    const fieldSchema = (ci: number, forceRequired = false) =>
      connectSchema(
        cols[ci].connectType,
        forceRequired ? false : cols[ci].nullable,
        cols[ci].name,
      );
    const rowStruct = (field: string) => ({
      type: "struct",
      fields: cols.map((_, i) => fieldSchema(i)),
      optional: true,
      name: `${ns}.Value`,
      field,
    });
    const sourceFields = [
      ["version", "string"],
      ["connector", "string"],
      ["name", "string"],
      ["ts_ms", "int64"],
      ["snapshot", "string"],
      ["db", "string"],
      ["schema", "string"],
      ["table", "string"],
      ["schema_version", "int32"],
      ...options.positionFields,
    ].map(([field, type]) => ({ type, optional: true, field }));
    const keySchema = {
      type: "struct",
      fields: this.#keyColumns.map((ci) => fieldSchema(ci, true)),
      optional: false,
      name: `${ns}.Key`,
    };
    const valueSchema = {
      type: "struct",
      fields: [
        rowStruct("before"),
        rowStruct("after"),
        {
          type: "struct",
          fields: sourceFields,
          optional: false,
          name: `io.replicant.connector.${options.connector}.Source`,
          field: "source",
        },
        { type: "string", optional: false, field: "op" },
        { type: "int64", optional: true, field: "ts_ms" },
      ],
      optional: false,
      name: `${ns}.Envelope`,
    };
    const withSchema = options.includeSchema && options.format !== "fields";
    this.#keySchemaOpen = withSchema ? `{"schema":${JSON.stringify(keySchema)},"payload":` : "";
    this.#valueSchemaOpen = withSchema ? `{"schema":${JSON.stringify(valueSchema)},"payload":` : "";
    this.#sourceOpen = sourceOpen(options);
    const tableFields = sourceTableFields(table.id) +
      (table.version === undefined ? "" : `,"schema_version":${table.version}`);
    this.#sourceTableSnapshot = `,"snapshot":"true",${tableFields}`;
    this.#sourceTableStreaming = `,"snapshot":"false",${tableFields}`;
  }

  /** Field/value list of the entry for one event, plus a tombstone after deletes. */
  encode(event: ChangeEvent, nowMs: number): FieldOf<W>[][] {
    this.lastBlock = null;
    if (event.rows !== undefined && this.#wrap) {
      return this.#encodeBytes(event, event.rows, nowMs) as FieldOf<W>[][];
    }
    const row = event.after ?? event.before;
    const key = this.keyPayload(row);
    const entry = this.#encodeOne(event.op, key, event.before, event.after, event.position, nowMs);
    if (event.op === "d" && this.#tombstones) return [entry, this.tombstone(key)];
    return [entry];
  }

  /** A snapshot read (`op: r`) of one row. */
  encodeRead(row: RowFragments, position: SourcePosition, nowMs: number): FieldOf<W>[] {
    return this.#encodeOne("r", this.keyPayload(row), null, row, position, nowMs);
  }

  /**
   * Snapshot reads (`op: r`) of every row of a batch, written as UTF-8 into one buffer: the
   * same JSON as `encodeRead`, with keys and values as slices of that buffer (wrapped with
   * their schema half when the encoder wraps). The constant parts are encoded once per
   * table, so a row costs byte copies only. `reuse`, a buffer an earlier call returned, is
   * written over when large enough: its entries must no longer be needed.
   */
  encodeReadBatch(
    batch: JsonRowBatch,
    position: SourcePosition,
    nowMs: number,
    reuse?: Uint8Array,
  ): { entries: EntryField[][]; buffer: Uint8Array } {
    const plan = this.#bytes ??= this.#bytePlan();
    const fieldsFormat = this.#format === "fields";
    const source = this.#sourceOpen + position.tsMs + this.#sourceTableSnapshot +
      (position.fields === "" ? "}" : "," + position.fields + "}");
    // Per chunk: the value's end (compact, extended) or the shared source and ts_ms fields.
    const shared = fieldsFormat ? utf8.encode(source + nowMs) : null;
    const valueEnd = utf8.encode(
      fieldsFormat
        ? plan.rowEnd
        : `${plan.rowEnd},"source":${source},"op":"r","ts_ms":${nowMs}}${plan.valueClose}`,
    );
    const rows = batch.rows;
    // Every fragment lands at most twice (key and value); everything else is constant.
    const need = 2 * batch.length + rows * (plan.perRow + valueEnd.length) +
      (shared?.length ?? 0);
    const out = reuse !== undefined && reuse.length >= need
      ? reuse
      : new Uint8Array(Math.max(need + (need >> 2), reuse?.length ?? 0));
    let p = 0;
    let sourceSlice: ByteSlice | null = null;
    let tsSlice: ByteSlice | null = null;
    if (shared !== null) {
      p = put(out, p, shared, 0, shared.length);
      sourceSlice = new ByteSlice(out, 0, shared.length - String(nowMs).length);
      tsSlice = new ByteSlice(out, sourceSlice.end, p);
    }
    const src = batch.bytes;
    const ends = batch.ends;
    const columns = batch.columns;
    const kc = this.#keyColumns;
    const keyCount = kc.length;
    const { keyStart, keyPrefixes, keyEnd, valueStart, columnPrefixes } = plan;
    const wrapKey = this.#wrap && this.#keySchemaOpen !== "";
    const wrapValue = this.#wrap && this.#valueSchemaOpen !== "";
    const c = plan.consts;
    const entries: EntryField[][] = new Array(rows);
    for (let r = 0; r < rows; r++) {
      const base = r * columns;
      let key: EntryField;
      if (keyCount === 0) key = c.default;
      else {
        // keyStart, then each key fragment after its prefix, then keyEnd.
        const k0 = p;
        p = put(out, p, keyStart, 0, keyStart.length);
        for (let i = 0; i < keyCount; i++) {
          if (i > 0) p = put(out, p, keyPrefixes[i], 0, keyPrefixes[i].length);
          const k = base + kc[i];
          p = put(out, p, src, k === 0 ? 0 : ends[k - 1], ends[k]);
        }
        p = put(out, p, keyEnd, 0, keyEnd.length);
        key = new ByteSlice(out, k0, p);
        if (wrapKey) key = new WrappedField(this.#keySchemaOpen, key);
      }
      const v0 = p;
      p = put(out, p, valueStart, 0, valueStart.length);
      for (let i = 0; i < columns; i++) {
        if (i > 0) p = put(out, p, columnPrefixes[i], 0, columnPrefixes[i].length);
        const k = base + i;
        p = put(out, p, src, k === 0 ? 0 : ends[k - 1], ends[k]);
      }
      p = put(out, p, valueEnd, 0, valueEnd.length);
      if (fieldsFormat) {
        entries[r] = [
          c.op,
          c.r,
          c.table,
          c.tableName,
          c.key,
          key,
          c.before,
          c.null,
          c.after,
          new ByteSlice(out, v0, p),
          c.source,
          sourceSlice!,
          c.ts_ms,
          tsSlice!,
        ];
        continue;
      }
      let value: EntryField = new ByteSlice(out, v0, p);
      if (wrapValue) value = new WrappedField(this.#valueSchemaOpen, value);
      entries[r] = this.#format === "compact" ? [key, value] : [c.key, key, c.value, value];
    }
    return { entries, buffer: out };
  }

  /**
   * `encode` of an event whose rows are bytes (wrapping encoders only): the same JSON, written
   * into the arena; keys and values are slices of it.
   */
  #encodeBytes(event: ChangeEvent, rows: EventRows, nowMs: number): EntryField[][] {
    const plan = this.#bytes ??= this.#bytePlan();
    const { batch, before, after } = rows;
    const src = batch.bytes;
    const columns = batch.columns;
    const position = event.position;
    const fields = position.fields;
    const rowBytes = (r: number) =>
      r < 0 ? 4 : batch.start((r + 1) * columns) - batch.start(r * columns);
    const need = 2 * (rowBytes(before) + rowBytes(after)) + 2 * plan.perRow +
      3 * (fields.length + plan.sourceStreaming.length) + 160;
    const block = this.lastBlock = this.arena.room(need);
    const out = block.bytes;
    let p = block.used;
    const c = plan.consts;
    const keyRow = after >= 0 ? after : before;
    const kc = this.#keyColumns;
    let keyPayload: EntryField = c.default;
    if (kc.length > 0 && keyRow >= 0) {
      const k0 = p;
      const base = keyRow * columns;
      for (let i = 0; i < kc.length; i++) {
        const prefix = plan.keyPrefixes[i];
        p = put(out, p, prefix, 0, prefix.length);
        const k = base + kc[i];
        p = put(out, p, src, batch.start(k), batch.end(k));
      }
      out[p++] = 0x7d; // }
      keyPayload = new ByteSlice(out, k0, p);
    }
    const fieldsFormat = this.#format === "fields";
    const op = plan.ops[event.op];
    let entry: EntryField[];
    if (fieldsFormat) {
      const b0 = p;
      p = this.#writeRow(out, p, batch, before, plan);
      const b = new ByteSlice(out, b0, p);
      const a0 = p;
      p = this.#writeRow(out, p, batch, after, plan);
      const a = new ByteSlice(out, a0, p);
      const s0 = p;
      p = this.#writeSource(out, p, position, plan);
      const source = new ByteSlice(out, s0, p);
      const t0 = p;
      p = writeAscii(out, p, String(nowMs));
      entry = [
        c.op,
        op,
        c.table,
        c.tableName,
        c.key,
        keyPayload,
        c.before,
        b,
        c.after,
        a,
        c.source,
        source,
        c.ts_ms,
        new ByteSlice(out, t0, p),
      ];
    } else {
      const v0 = p;
      p = put(out, p, plan.beforeOpen, 0, plan.beforeOpen.length);
      p = this.#writeRow(out, p, batch, before, plan);
      p = put(out, p, plan.afterOpen, 0, plan.afterOpen.length);
      p = this.#writeRow(out, p, batch, after, plan);
      p = put(out, p, plan.sourceOpen, 0, plan.sourceOpen.length);
      p = this.#writeSource(out, p, position, plan);
      p = put(out, p, plan.opOpen, 0, plan.opOpen.length);
      p = put(out, p, op.bytes, op.start, op.end);
      p = put(out, p, plan.tsOpen, 0, plan.tsOpen.length);
      p = writeAscii(out, p, String(nowMs));
      out[p++] = 0x7d; // }
      let value: EntryField = new ByteSlice(out, v0, p);
      if (this.#valueSchemaOpen !== "") value = new WrappedField(this.#valueSchemaOpen, value);
      entry = this.#format === "compact" ? [this.#byteKey(keyPayload), value] : [
        c.key,
        this.#byteKey(keyPayload),
        c.value,
        value,
      ];
    }
    block.used = p;
    if (event.op !== "d" || !this.#tombstones) return [entry];
    switch (this.#format) {
      case "compact":
        return [entry, [entry[0], TOMBSTONE_VALUE]];
      case "extended":
        return [entry, ["key", entry[1], "value", TOMBSTONE_VALUE]];
      case "fields":
        return [entry, ["op", "tombstone", "table", this.#tableName, "key", keyPayload]];
    }
  }

  /** A key payload with its schema half; the literal `default` stays bare. */
  #byteKey(keyPayload: EntryField): EntryField {
    if (this.#keySchemaOpen === "" || !(keyPayload instanceof ByteSlice)) return keyPayload;
    if (keyPayload === this.#bytes!.consts.default) return TOMBSTONE_VALUE;
    return new WrappedField(this.#keySchemaOpen, keyPayload);
  }

  /** A row's JSON object (or `null`) from its fragments. */
  #writeRow(out: Uint8Array, p: number, batch: JsonRowBatch, row: number, plan: BytePlan) {
    if (row < 0) {
      out[p] = 0x6e; // n
      out[p + 1] = 0x75; // u
      out[p + 2] = 0x6c; // l
      out[p + 3] = 0x6c; // l
      return p + 4;
    }
    const columns = batch.columns;
    if (columns === 0) {
      out[p] = 0x7b; // {
      out[p + 1] = 0x7d; // }
      return p + 2;
    }
    const src = batch.bytes;
    const prefixes = plan.columnPrefixes;
    let k = row * columns;
    let s = batch.start(k);
    for (let i = 0; i < columns; i++, k++) {
      p = put(out, p, prefixes[i], 0, prefixes[i].length);
      const e = batch.end(k);
      p = put(out, p, src, s, e);
      s = e;
    }
    out[p++] = 0x7d; // }
    return p;
  }

  /** The `source` block of a streamed change. */
  #writeSource(out: Uint8Array, p: number, position: SourcePosition, plan: BytePlan): number {
    p = put(out, p, plan.sourceHead, 0, plan.sourceHead.length);
    p = writeAscii(out, p, String(position.tsMs));
    p = put(out, p, plan.sourceStreaming, 0, plan.sourceStreaming.length);
    if (position.fields !== "") {
      out[p++] = 0x2c; // ,
      p = writeAscii(out, p, position.fields);
    }
    out[p++] = 0x7d; // }
    return p;
  }

  /** The constant parts of this table's entries as bytes (see encodeReadBatch). */
  #bytePlan(): BytePlan {
    const enc = (s: string) => utf8.encode(s);
    // Unwrapped schema halves are written into every entry; wrapped ones stay strings.
    const keyOpen = this.#wrap ? "" : this.#keySchemaOpen;
    const valueOpen = this.#wrap ? "" : this.#valueSchemaOpen;
    const fieldsFormat = this.#format === "fields";
    const columns = this.#columnPrefixes.length;
    const rowStart = columns === 0 ? "{}" : this.#columnPrefixes[0];
    const names = [
      "default",
      "key",
      "value",
      "op",
      "r",
      "table",
      "before",
      "null",
      "after",
      "source",
      "ts_ms",
    ] as const;
    const all = enc(names.join("") + this.#tableName);
    const consts = {} as BytePlan["consts"];
    let at = 0;
    for (const n of names) consts[n] = new ByteSlice(all, at, at += n.length);
    consts.tableName = new ByteSlice(all, at, all.length);
    const ops = enc("rcudt");
    const plan: BytePlan = {
      beforeOpen: enc('{"before":'),
      afterOpen: enc(',"after":'),
      sourceOpen: enc(',"source":'),
      sourceHead: enc(this.#sourceOpen),
      sourceStreaming: enc(this.#sourceTableStreaming),
      opOpen: enc(',"op":"'),
      tsOpen: enc('","ts_ms":'),
      ops: {
        r: new ByteSlice(ops, 0, 1),
        c: new ByteSlice(ops, 1, 2),
        u: new ByteSlice(ops, 2, 3),
        d: new ByteSlice(ops, 3, 4),
        t: new ByteSlice(ops, 4, 5),
      },
      keyStart: enc(keyOpen + (this.#keyPrefixes[0] ?? "")),
      keyPrefixes: this.#keyPrefixes.map(enc),
      keyEnd: enc(keyOpen === "" ? "}" : "}}"),
      valueStart: enc(fieldsFormat ? rowStart : valueOpen + '{"before":null,"after":' + rowStart),
      columnPrefixes: this.#columnPrefixes.map(enc),
      rowEnd: columns === 0 ? "" : "}",
      valueClose: valueOpen === "" ? "" : "}",
      consts,
      perRow: 0,
    };
    const sum = (parts: Uint8Array[]) => parts.reduce((n, b) => n + b.length, 0);
    plan.perRow = plan.keyStart.length + sum(plan.keyPrefixes) + plan.keyEnd.length +
      plan.valueStart.length + sum(plan.columnPrefixes);
    return plan;
  }

  tombstone(keyPayload: string): FieldOf<W>[] {
    const key = this.#key(keyPayload);
    switch (this.#format) {
      case "compact":
        return [key, TOMBSTONE_VALUE];
      case "extended":
        return ["key", key, "value", TOMBSTONE_VALUE];
      case "fields":
        return ["op", "tombstone", "table", this.#tableName, "key", keyPayload];
    }
  }

  /** JSON of the key columns of a row; the literal `default` when the table has no columns. */
  keyPayload(row: RowFragments | null): string {
    const kc = this.#keyColumns;
    if (kc.length === 0 || row === null) return TOMBSTONE_VALUE;
    let s = "";
    for (let i = 0; i < kc.length; i++) s += this.#keyPrefixes[i] + row[kc[i]];
    return s + "}";
  }

  /** The key with its schema half; the literal `default` stays bare. */
  #key(keyPayload: string): FieldOf<W> {
    if (this.#keySchemaOpen === "" || keyPayload === TOMBSTONE_VALUE) {
      return keyPayload as FieldOf<W>;
    }
    if (this.#wrap) return new WrappedField(this.#keySchemaOpen, keyPayload) as FieldOf<W>;
    return (this.#keySchemaOpen + keyPayload + "}") as FieldOf<W>;
  }

  /** A row image as the entries carry it (`before`, `after`): `{"col":value,…}` or `null`. */
  rowJson(row: RowFragments | null): string {
    if (row === null) return "null";
    const p = this.#columnPrefixes;
    if (p.length === 0) return "{}";
    let s = "";
    for (let i = 0; i < p.length; i++) s += p[i] + row[i];
    return s + "}";
  }

  #encodeOne(
    op: Op,
    keyPayload: string,
    before: RowFragments | null,
    after: RowFragments | null,
    position: SourcePosition,
    nowMs: number,
  ): FieldOf<W>[] {
    const source = this.#sourceOpen + position.tsMs +
      (op === "r" ? this.#sourceTableSnapshot : this.#sourceTableStreaming) +
      (position.fields === "" ? "}" : "," + position.fields + "}");
    const b = this.rowJson(before);
    const a = this.rowJson(after);
    if (this.#format === "fields") {
      return [
        "op",
        op,
        "table",
        this.#tableName,
        "key",
        keyPayload,
        "before",
        b,
        "after",
        a,
        "source",
        source,
        "ts_ms",
        String(nowMs),
      ];
    }
    const payload = `{"before":${b},"after":${a},"source":${source},"op":"${op}","ts_ms":${nowMs}}`;
    const value =
      (this.#valueSchemaOpen === ""
        ? payload
        : this.#wrap
        ? new WrappedField(this.#valueSchemaOpen, payload)
        : this.#valueSchemaOpen + payload + "}") as FieldOf<W>;
    const key = this.#key(keyPayload);
    return this.#format === "compact" ? [key, value] : ["key", key, "value", value];
  }
}
