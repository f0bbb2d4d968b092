import type { RedisClient } from "./redis_connection.ts";
import { decodeEntry, TAIL_ENTRIES } from "../../core/entry_decoder.ts";
import { type MessageFormat, TOMBSTONE_VALUE } from "../../core/entry_encoder.ts";
import type { SortKeyOfSource } from "../../ports/position.ts";
import type { StreamTail } from "../../ports/stream_sink.ts";

/**
 * How far a stream got: reads its last entries with XREVRANGE and
 * decodes the position of the newest one that has one (tombstones and snapshot rows carry
 * none). Incoming changes at or below `sortKey` are already in the stream.
 */
export async function readStreamTail(
  client: RedisClient,
  stream: string,
  format: MessageFormat,
  tombstones: boolean,
  sortKeyOf: SortKeyOfSource,
  scan = TAIL_ENTRIES,
): Promise<StreamTail> {
  const entries = await client.xrevrange(stream, "+", "-", "COUNT", scan) as [
    string,
    string[],
  ][];
  if (entries.length === 0) {
    return { lastId: null, sortKey: null, source: null, missingTombstone: null };
  }
  let sortKey: string | null = null;
  let source: Record<string, unknown> | null = null;
  for (const [, fields] of entries) {
    let key: string | null = null;
    let decoded: Record<string, unknown> | null = null;
    try {
      decoded = decodeEntry(fields, format).source;
      key = sortKeyOf(decoded);
    } catch {
      key = null;
    }
    if (key !== null) {
      sortKey = key;
      source = decoded;
      break;
    }
  }
  let missingTombstone: string[] | null = null;
  const newest = entries[0][1];
  if (tombstones) {
    let op: string | null = null;
    try {
      op = decodeEntry(newest, format).op;
    } catch {
      op = null;
    }
    if (op === "d") missingTombstone = tombstoneOf(newest, format);
  }
  return { lastId: entries[0][0], sortKey, source, missingTombstone };
}

/** The tombstone that follows a delete entry, built from the delete's own key text. */
export function tombstoneOf(deleteEntry: string[], format: MessageFormat): string[] {
  switch (format) {
    case "compact":
      return [deleteEntry[0], TOMBSTONE_VALUE];
    case "extended":
      return ["key", deleteEntry[1], "value", TOMBSTONE_VALUE];
    case "fields": {
      const get = (name: string) => {
        for (let i = 0; i < deleteEntry.length; i += 2) {
          if (deleteEntry[i] === name) return deleteEntry[i + 1];
        }
        return "";
      };
      return ["op", "tombstone", "table", get("table"), "key", get("key")];
    }
  }
}
