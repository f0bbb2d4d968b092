import type { MessageFormat } from "./entry_encoder.ts";

/**
 * An entry Replicant wrote, read back: the row's key, the change (`op`, the row `before` and
 * `after` it), and the `source` block with the entry's position. Replicant reads stream
 * tails with it (how far a stream got); consumers decode every entry with it. Pure.
 */
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
