/**
 * What the writers of a run need to stay at the end of their streams while retention trims
 * them. A resuming run reads a stream's newest entries to know how far it got, the undo of a
 * failed realtime batch deletes every entry after the last one known good, and a snapshot
 * batch cut off by a lost connection looks for its rows among the newest entries: retention
 * keeps enough of each stream's end that all three see exactly what they would see in a
 * stream never trimmed.
 */

import { TAIL_ENTRIES } from "../../core/entry_decoder.ts";

/** What retention must leave at the end of a stream. */
export interface TailProtection {
  /**
   * Keep the `keep` newest entries at or before this id and everything after them; null:
   * at or before the newest entry the caller saw before asking. Entries after it may still
   * be deleted by an undo.
   */
  before: string | null;
  keep: number;
}

export class StreamTailGuard {
  /** Per stream, the last entry known good before the realtime batch in flight (null: none). */
  readonly #inFlight = new Map<string, string | null>();
  /** Per stream, the newest entries a snapshot writer may look for (largest window). */
  readonly #windows = new Map<string, number[]>();

  /**
   * A realtime batch into `stream` is about to be sent: entries after `lastId` may be
   * deleted again by its undo, so nothing at or before it that a resume reads may go.
   */
  batchStarted(stream: string, lastId: string | null): void {
    this.#inFlight.set(stream, lastId);
  }

  /** The batch landed, or its undo finished. */
  batchSettled(stream: string): void {
    this.#inFlight.delete(stream);
  }

  /**
   * While a snapshot writes `stream`, its `entries` newest entries stay (a batch cut off by a
   * lost connection is looked for among them). Returns the release.
   */
  keepNewest(stream: string, entries: number): () => void {
    const list = this.#windows.get(stream) ?? [];
    list.push(entries);
    this.#windows.set(stream, list);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = this.#windows.get(stream) ?? [];
      now.splice(now.indexOf(entries), 1);
      if (now.length === 0) this.#windows.delete(stream);
    };
  }

  /**
   * What retention must keep of `stream` now; null when it must not trim it at all (a batch
   * is in flight into a stream that held nothing before it). Ask after reading the stream's
   * newest id: a batch that starts later only ever undoes entries after that id.
   */
  protection(stream: string): TailProtection | null {
    const keep = Math.max(TAIL_ENTRIES, ...(this.#windows.get(stream) ?? []));
    if (!this.#inFlight.has(stream)) return { before: null, keep };
    const lastId = this.#inFlight.get(stream)!;
    return lastId === null ? null : { before: lastId, keep };
  }
}
