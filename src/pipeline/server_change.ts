/**
 * Carrying a replication over to another source server that continues its checkpoint (a
 * MySQL/MariaDB failover to a server that has the checkpoint's GTIDs).
 *
 * Exactly-once rests on positions: a change at or below its stream's tail is already there.
 * The new server numbers its binlog differently, so its positions compare with nothing
 * written before. The move is safe when no stream holds a change past the checkpoint
 * (nothing can come twice): then each stream's tail at the move is recorded, and until a
 * stream gets an entry after that one its tail says nothing about the new positions.
 * Snapshot marks (MySQL `full`) are old positions too: they are dropped when the checkpoint
 * is past them all, else the move is refused.
 *
 * @module
 */

import { GapError } from "../core/errors.ts";
import type { MessageFormat } from "../core/entry_encoder.ts";
import type { StreamReads } from "../ports/stream_sink.ts";
import type { SortKeyOfSource } from "../ports/position.ts";
import type { ServerChange } from "../ports/streaming_source.ts";
import {
  type CheckpointStore,
  POSITIONS_FROM_PREFIX,
  SKIP_THROUGH_FIELD_PREFIX,
  SOURCE_SERVER_FIELD,
} from "../ports/checkpoint.ts";

export interface StreamOfId {
  name: string;
  format: MessageFormat;
  tombstones: boolean;
}

/**
 * Checks that the move is safe and records it (the new server, each stream's tail). Throws
 * GapError when a stream holds changes past the checkpoint or a snapshot mark is past it.
 * Returns the recorded tails.
 */
export async function acceptServerChange(
  change: ServerChange,
  sink: StreamReads,
  checkpoints: CheckpointStore,
  streams: StreamOfId[],
  sortKeyOf: SortKeyOfSource,
  skipThrough: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const refuse = (reason: string) =>
    new GapError({
      checkpoint: `${change.checkpoint} on server ${change.from ?? "(not recorded)"}`,
      available: `server ${change.to}, which has the checkpoint's transactions`,
      reason: `The source is now another server than the checkpoint's (a failover). ${reason}`,
    });
  for (const [stream, mark] of skipThrough) {
    if (mark >= change.sortKey) {
      throw refuse(
        `The snapshot of "${stream}" was read at a binlog position past the checkpoint; ` +
          "that position means nothing on the new server.",
      );
    }
  }
  const tails = new Map<string, string>();
  for (const s of streams) {
    const tail = await sink.readTail(s.name, {
      format: s.format,
      tombstones: s.tombstones,
      sortKeyOf,
    });
    if (tail.lastId === null) continue;
    if (tail.source !== null && !change.covers(tail.source)) {
      throw refuse(
        `Stream "${s.name}" already holds changes past the checkpoint; the new server ` +
          "numbers them differently, so they could not be told from new ones.",
      );
    }
    tails.set(s.name, tail.lastId);
  }
  const fields: Record<string, string> = { [SOURCE_SERVER_FIELD]: change.to };
  for (const [name, id] of tails) fields[POSITIONS_FROM_PREFIX + name] = id;
  // Snapshot marks are emptied, not deleted: HSET is among the rights Replicant needs, HDEL not.
  for (const stream of skipThrough.keys()) fields[SKIP_THROUGH_FIELD_PREFIX + stream] = "";
  await checkpoints.write(fields);
  return tails;
}

/** Whether stream entry id `a` comes after `b` (`<ms>-<seq>`). */
export function entryIdAfter(a: string, b: string): boolean {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am > bm || (am === bm && as > bs);
}
