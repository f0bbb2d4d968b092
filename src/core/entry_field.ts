const utf8Decoder = new TextDecoder();

/**
 * UTF-8 text held as `bytes[start, end)` of a buffer that other fields share. The snapshot
 * writes every entry of a chunk into one buffer and hands out slices of it, so no string is
 * made per value and the RESP writer copies the bytes as they are. The buffer must stay
 * untouched until every batch holding its slices is written.
 */
export class ByteSlice {
  constructor(readonly bytes: Uint8Array, readonly start: number, readonly end: number) {}
  get length(): number {
    return this.end - this.start;
  }
  toString(): string {
    return utf8Decoder.decode(this.bytes.subarray(this.start, this.end));
  }
}

/**
 * A field value of an entry. Values with a `schema` half are `open + body + "}"`
 * where `open` (`{"schema":…,"payload":`, about 2 KB) is the same for every entry of a table:
 * a WrappedField keeps the two apart so a writer encodes `open` to bytes once per table
 * instead of once per entry, and no 2 KB string is built per entry.
 */
export class WrappedField {
  constructor(readonly open: string, readonly body: string | ByteSlice) {}
  toString(): string {
    return this.open + bodyText(this.body) + "}";
  }
}

export type EntryField = string | WrappedField | ByteSlice;

function bodyText(body: string | ByteSlice): string {
  return typeof body === "string" ? body : body.toString();
}

/** The field's text. */
export function fieldText(f: EntryField): string {
  if (typeof f === "string") return f;
  if (f instanceof ByteSlice) return f.toString();
  return f.open + bodyText(f.body) + "}";
}

/**
 * The field's size for byte accounting: UTF-16 units of strings, bytes of slices (close
 * enough: both only bound memory).
 */
export function fieldLength(f: EntryField): number {
  if (typeof f === "string") return f.length;
  if (f instanceof ByteSlice) return f.end - f.start;
  return f.open.length + f.body.length + 1;
}

/** Every field as text (for clients that take strings). */
export function entryText(fields: readonly EntryField[]): string[] {
  return fields.map(fieldText);
}
