import type { MessageFormat } from "./entry_encoder.ts";

/**
 * Reads back what Replicant needs from an entry it wrote: the key payload and the
 * `source` block, so the tail of a stream tells how far that stream got (DESIGN
 * §Exactly once). Pure.
 */
/** Newest entries a resuming run reads (`XREVRANGE … COUNT`) to find a stream's position. */
export const TAIL_ENTRIES = 16;

export interface DecodedEntry {
  key: Record<string, unknown> | null;
  source: Record<string, unknown> | null;
  op: string | null;
}

export function decodeEntry(fields: string[], format: MessageFormat): DecodedEntry {
  if (format === "fields") {
    const get = (name: string) => {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    const key = get("key");
    const source = get("source");
    return {
      key: key && key !== "default" ? JSON.parse(key) : null,
      source: source ? JSON.parse(source) : null,
      op: get("op") ?? null,
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
  };
}
