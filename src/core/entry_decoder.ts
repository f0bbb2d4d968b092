import { type MessageFormat, TOMBSTONE_VALUE } from "./entry_encoder.ts";
import { objectMembers, payloadText } from "./raw_json.ts";

/**
 * An entry Replicant wrote, read back: the row's key, the change (`op`, the row `before` and
 * `after` it), and the `source` block with the entry's position. Replicant reads stream
 * tails with it (how far a stream got); consumers decode every entry with it. Pure.
 */
/** Newest entries a resuming run reads (`XREVRANGE … COUNT`) to find a stream's position. */
export const TAIL_ENTRIES = 16;

export interface DecodedEntry {
  /** The key columns of the row (`{"id": 1}`); null for an entry without one. */
  key: Record<string, unknown> | null;
  source: Record<string, unknown> | null;
  /** `r` (snapshot read), `c`, `u`, `d`, `t` (truncate); null for a tombstone. */
  op: string | null;
  /** The row before the change (updates and deletes, when the source gives it), else null. */
  before: Record<string, unknown> | null;
  /** The row after the change (reads, inserts, updates), else null. */
  after: Record<string, unknown> | null;
  /** The tombstone that follows a delete (value `default`): its key only, nothing to apply. */
  tombstone: boolean;
}

/** Decodes an entry's field/value list (as XRANGE gives it) written in `format`. */
export function decodeEntry(fields: string[], format: MessageFormat): DecodedEntry {
  if (format === "fields") {
    const get = (name: string) => {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    const json = (text: string | undefined) =>
      text === undefined || text === "default" ? null : JSON.parse(text);
    const op = get("op") ?? null;
    const tombstone = op === "tombstone";
    return {
      key: json(get("key")),
      source: json(get("source")),
      op: tombstone ? null : op,
      before: json(get("before")),
      after: json(get("after")),
      tombstone,
    };
  }
  const [keyText, valueText] = format === "compact"
    ? [fields[0], fields[1]]
    : [fields[1], fields[3]];
  const unwrap = (text: string | undefined) => {
    if (text === undefined || text === "default") return null;
    const v = JSON.parse(text);
    return v && typeof v === "object" && "payload" in v && "schema" in v ? v.payload : v;
  };
  const value = unwrap(valueText);
  return {
    key: unwrap(keyText),
    source: value?.source ?? null,
    op: value?.op ?? null,
    before: value?.before ?? null,
    after: value?.after ?? null,
    tombstone: valueText === "default",
  };
}

/**
 * An entry as the texts Replicant wrote: the key payload and the row images exactly as
 * written (no value parsed), for rebuilding tables byte for byte. `op` is `tombstone` for the
 * entry that follows a delete.
 */
export interface RawEntry {
  op: string;
  /** Key payload (`{"id":1}`), or `default` for a table without columns. */
  key: string;
  before: string | null;
  after: string | null;
  /** The `source` block's text. */
  source: string | null;
  /** `fields` format only: the table's qualified name. */
  table?: string;
}

const NO_BEFORE = '{"before":null,"after":';
const SOURCE_KEY = ',"source":';
const OP_KEY = ',"op":"';

export function decodeRawEntry(fields: string[], format: MessageFormat): RawEntry {
  if (format === "fields") {
    const get = (name: string) => {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    const image = (v: string | undefined) => (v === undefined || v === "null" ? null : v);
    return {
      op: get("op") ?? "",
      key: get("key") ?? "default",
      before: image(get("before")),
      after: image(get("after")),
      source: get("source") ?? null,
      table: get("table"),
    };
  }
  const [keyText, valueText] = format === "compact"
    ? [fields[0], fields[1]]
    : [fields[1], fields[3]];
  const key = keyText === undefined || keyText === "default" ? "default" : payloadText(keyText);
  if (valueText === undefined || valueText === TOMBSTONE_VALUE) {
    return { op: "tombstone", key, before: null, after: null, source: null };
  }
  const payload = payloadText(valueText);
  const out: RawEntry = { op: "", key, before: null, after: null, source: null };
  if (payload.startsWith(NO_BEFORE)) {
    // The encoder's layout: `{"before":null,"after":A,"source":S,"op":"x","ts_ms":N}`. The
    // source block (names, positions) cannot hold `,"source":` or `,"op":"` outside a
    // string, so the last of each is the envelope's: no need to scan the row.
    const s = payload.lastIndexOf(SOURCE_KEY);
    const o = payload.lastIndexOf(OP_KEY);
    if (s > NO_BEFORE.length && o > s) {
      const after = payload.slice(NO_BEFORE.length, s);
      out.after = after === "null" ? null : after;
      out.source = payload.slice(s + SOURCE_KEY.length, o);
      out.op = payload.slice(o + OP_KEY.length, payload.indexOf('"', o + OP_KEY.length));
      return out;
    }
  }
  for (const [name, value] of objectMembers(payload)) {
    if (name === "op") out.op = JSON.parse(value);
    else if (name === "before") out.before = value === "null" ? null : value;
    else if (name === "after") out.after = value === "null" ? null : value;
    else if (name === "source") out.source = value;
  }
  return out;
}
