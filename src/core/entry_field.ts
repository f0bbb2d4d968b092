/**
 * A field value of an entry. Values with a `schema` half (SPEC §4) are `open + body + "}"`
 * where `open` (`{"schema":…,"payload":`, about 2 KB) is the same for every entry of a table:
 * a WrappedField keeps the two apart so a writer encodes `open` to bytes once per table
 * instead of once per entry, and no 2 KB string is built per entry.
 */
export class WrappedField {
  constructor(readonly open: string, readonly body: string) {}
  toString(): string {
    return this.open + this.body + "}";
  }
}

export type EntryField = string | WrappedField;

/** The field's text. */
export function fieldText(f: EntryField): string {
  return typeof f === "string" ? f : f.open + f.body + "}";
}

/** The field's length in UTF-16 units (for byte accounting). */
export function fieldLength(f: EntryField): number {
  return typeof f === "string" ? f.length : f.open.length + f.body.length + 1;
}

/** Every field as text (for clients that take strings). */
export function entryText(fields: readonly EntryField[]): string[] {
  return fields.map(fieldText);
}
