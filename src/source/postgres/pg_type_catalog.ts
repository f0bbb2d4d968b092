/**
 * What Replicant knows about PostgreSQL data types: enough of `pg_type` to pick, once per
 * column, how a value in PostgreSQL's text representation becomes JSON
 * (see `pg_text_decoder.ts`).
 *
 * The built-in types (OIDs below 16384 are fixed by PostgreSQL for every version Replicant
 * supports) are known up front. User types — enums, domains, composite types, extension
 * types and the arrays of all of these — are loaded by the caller with
 * {@link PG_TYPE_CATALOG_SQL} and {@link PgTypeCatalog.loadRows}.
 *
 * @module
 */

/** One row of `pg_type`, reduced to what the value decoders need. */
export interface PgTypeInfo {
  /** `pg_type.oid`. */
  oid: number;
  /** `pg_type.typname` (arrays start with `_`). */
  name: string;
  /** `pg_type.typcategory`: `A` array, `E` enum, `N` numeric, `S` string, `U` user… */
  category: string;
  /** `pg_type.typelem` for arrays (the element type), 0 otherwise. */
  elementOid: number;
  /** `pg_type.typbasetype` for domains (the type the domain constrains), 0 otherwise. */
  baseOid: number;
  /**
   * `pg_type.typdelim` of the type: the character that separates its values inside an
   * array literal. `,` for every type but `box` (`;`). Omitted means `,`.
   */
  delimiter?: string;
}

/** A row returned by {@link PG_TYPE_CATALOG_SQL}; numbers may arrive as text. */
export interface PgTypeRow {
  oid: number | string;
  typname: string;
  typcategory: string;
  typelem: number | string;
  typbasetype: number | string;
  typdelim?: string | null;
}

/**
 * The query that loads every user-defined type (OIDs from 16384 on: enums, domains,
 * composite, range and extension types and their arrays). Feed its rows to
 * {@link PgTypeCatalog.loadRows}. The built-in types never need loading.
 *
 * Casts to `int8`/`text` so the rows parse the same with any `pg` type parser setting.
 */
export const PG_TYPE_CATALOG_SQL = "SELECT t.oid::int8 AS oid, t.typname::text AS typname, " +
  "t.typcategory::text AS typcategory, t.typelem::int8 AS typelem, " +
  "t.typbasetype::int8 AS typbasetype, t.typdelim::text AS typdelim " +
  "FROM pg_catalog.pg_type t WHERE t.oid >= 16384 ORDER BY t.oid";

/** Lowest OID PostgreSQL assigns to user-created objects (`FirstNormalObjectId`). */
export const PG_FIRST_USER_OID = 16384;

/**
 * Built-in scalar types: [oid, name, category, array oid]. Taken from `pg_type` of
 * PostgreSQL 15 (stable across 12+; the multirange types exist from 14 on, harmless
 * before). The array types are derived: name `_<name>`, category `A`, element `oid`.
 */
const BUILTIN_TYPES: ReadonlyArray<readonly [number, string, string, number]> = [
  [16, "bool", "B", 1000],
  [17, "bytea", "U", 1001],
  [18, "char", "Z", 1002],
  [19, "name", "S", 1003],
  [20, "int8", "N", 1016],
  [21, "int2", "N", 1005],
  [22, "int2vector", "A", 1006],
  [23, "int4", "N", 1007],
  [24, "regproc", "N", 1008],
  [25, "text", "S", 1009],
  [26, "oid", "N", 1028],
  [27, "tid", "U", 1010],
  [28, "xid", "U", 1011],
  [29, "cid", "U", 1012],
  [30, "oidvector", "A", 1013],
  [114, "json", "U", 199],
  [142, "xml", "U", 143],
  [600, "point", "G", 1017],
  [601, "lseg", "G", 1018],
  [602, "path", "G", 1019],
  [603, "box", "G", 1020],
  [604, "polygon", "G", 1027],
  [628, "line", "G", 629],
  [650, "cidr", "I", 651],
  [700, "float4", "N", 1021],
  [701, "float8", "N", 1022],
  [718, "circle", "G", 719],
  [774, "macaddr8", "U", 775],
  [790, "money", "N", 791],
  [829, "macaddr", "U", 1040],
  [869, "inet", "I", 1041],
  [1033, "aclitem", "U", 1034],
  [1042, "bpchar", "S", 1014],
  [1043, "varchar", "S", 1015],
  [1082, "date", "D", 1182],
  [1083, "time", "D", 1183],
  [1114, "timestamp", "D", 1115],
  [1184, "timestamptz", "D", 1185],
  [1186, "interval", "T", 1187],
  [1266, "timetz", "D", 1270],
  [1560, "bit", "V", 1561],
  [1562, "varbit", "V", 1563],
  [1700, "numeric", "N", 1231],
  [1790, "refcursor", "U", 2201],
  [2202, "regprocedure", "N", 2207],
  [2203, "regoper", "N", 2208],
  [2204, "regoperator", "N", 2209],
  [2205, "regclass", "N", 2210],
  [2206, "regtype", "N", 2211],
  [2950, "uuid", "U", 2951],
  [2970, "txid_snapshot", "U", 2949],
  [3220, "pg_lsn", "U", 3221],
  [3614, "tsvector", "U", 3643],
  [3615, "tsquery", "U", 3645],
  [3734, "regconfig", "N", 3735],
  [3769, "regdictionary", "N", 3770],
  [3802, "jsonb", "U", 3807],
  [3904, "int4range", "R", 3905],
  [3906, "numrange", "R", 3907],
  [3908, "tsrange", "R", 3909],
  [3910, "tstzrange", "R", 3911],
  [3912, "daterange", "R", 3913],
  [3926, "int8range", "R", 3927],
  [4072, "jsonpath", "U", 4073],
  [4089, "regnamespace", "N", 4090],
  [4096, "regrole", "N", 4097],
  [4191, "regcollation", "N", 4192],
  [4451, "int4multirange", "R", 6150],
  [4532, "nummultirange", "R", 6151],
  [4533, "tsmultirange", "R", 6152],
  [4534, "tstzmultirange", "R", 6153],
  [4535, "datemultirange", "R", 6155],
  [4536, "int8multirange", "R", 6157],
  [5038, "pg_snapshot", "U", 5039],
  [5069, "xid8", "U", 271],
];

/** Types whose `typdelim` is not `,`. */
const BUILTIN_DELIMITERS: ReadonlyMap<number, string> = new Map([[603, ";"]]);

function builtinEntries(): PgTypeInfo[] {
  const out: PgTypeInfo[] = [];
  for (const [oid, name, category, arrayOid] of BUILTIN_TYPES) {
    // int2vector/oidvector are category A with an element type in pg_type, but their
    // text form is space-separated, not an array literal; the decoder handles them by OID.
    const elementOid = oid === 22 ? 21 : oid === 30 ? 26 : 0;
    const delimiter = BUILTIN_DELIMITERS.get(oid);
    out.push(
      delimiter === undefined
        ? { oid, name, category, elementOid, baseOid: 0 }
        : { oid, name, category, elementOid, baseOid: 0, delimiter },
    );
    out.push({ oid: arrayOid, name: "_" + name, category: "A", elementOid: oid, baseOid: 0 });
  }
  return out;
}

const BUILTINS: readonly PgTypeInfo[] = builtinEntries();

function toOid(v: number | string, field: string): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new Error(`pg_type row: ${field} is not an OID: ${String(v)}`);
  }
  return n;
}

/** OID → {@link PgTypeInfo}, pre-filled with PostgreSQL's built-in types. */
export class PgTypeCatalog {
  readonly #types = new Map<number, PgTypeInfo>();

  constructor(extra: Iterable<PgTypeInfo> = []) {
    for (const info of BUILTINS) this.#types.set(info.oid, info);
    for (const info of extra) this.add(info);
  }

  /** Adds (or replaces) a type, e.g. an enum, domain or composite type from `pg_type`. */
  add(info: PgTypeInfo): void {
    this.#types.set(info.oid, info);
  }

  /** Adds the rows of {@link PG_TYPE_CATALOG_SQL} (object rows, as `pg` returns them). */
  loadRows(rows: Iterable<PgTypeRow>): void {
    for (const row of rows) {
      const delimiter = row.typdelim ?? ",";
      const info: PgTypeInfo = {
        oid: toOid(row.oid, "oid"),
        name: row.typname,
        category: row.typcategory,
        elementOid: toOid(row.typelem, "typelem"),
        baseOid: toOid(row.typbasetype, "typbasetype"),
      };
      if (delimiter !== ",") info.delimiter = delimiter;
      this.add(info);
    }
  }

  /** The type with this OID, or undefined when neither built in nor loaded. */
  get(oid: number): PgTypeInfo | undefined {
    return this.#types.get(oid);
  }

  /** Whether the type is known (a caller may reload user types when it is not). */
  has(oid: number): boolean {
    return this.#types.has(oid);
  }

  /** Number of known types. */
  get size(): number {
    return this.#types.size;
  }
}
