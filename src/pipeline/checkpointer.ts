/** One transaction in flight: how many of its events still wait for Redis. */
export interface InFlightTransaction {
  /** Its checkpoint token: the last part's (streaming_source.ts), set when it is closed. */
  token: string;
  pending: number;
  /** All parts delivered: no more events will be added. */
  closed: boolean;
  /** Schema versions that take effect with this transaction (table key → version; null: dropped). */
  schemas?: Map<string, number | null>;
  /** At least one of its changes was written to a stream by this run (not a duplicate). */
  wrote?: boolean;
}

/**
 * Tracks transactions in flight in source order and gives the highest checkpoint below
 * which every transaction is fully accepted (Redpanda Connect's checkpointer). Pure: the
 * pipeline tells it what was added and accepted; it never touches Redis or the source.
 */
export class Checkpointer {
  readonly #queue: InFlightTransaction[] = [];
  #head = 0;

  /** Registers the next transaction in source order. */
  begin(token: string): InFlightTransaction {
    const tx: InFlightTransaction = { token, pending: 0, closed: false };
    this.#queue.push(tx);
    return tx;
  }

  /** `n` more events of `tx` are on their way to Redis. */
  add(tx: InFlightTransaction, n = 1): void {
    if (tx.closed) throw new Error(`transaction ${tx.token} is closed`);
    tx.pending += n;
  }

  /** `n` events of `tx` were accepted by Redis (or dropped on purpose). */
  accepted(tx: InFlightTransaction, n = 1): void {
    if (n > tx.pending) throw new Error(`transaction ${tx.token}: more accepted than pending`);
    tx.pending -= n;
  }

  /** Every part of `tx` was delivered; `token`: the last part's checkpoint, when it differs. */
  close(tx: InFlightTransaction, token: string = tx.token): void {
    tx.token = token;
    tx.closed = true;
  }

  /**
   * Drops the finished transactions at the front (each given to `onDone`) and returns the
   * token of the last one dropped: the new checkpoint. Null when the front transaction is still in flight.
   */
  advance(onDone?: (tx: InFlightTransaction) => void): string | null {
    let token: string | null = null;
    while (this.#head < this.#queue.length) {
      const tx = this.#queue[this.#head];
      if (!tx.closed || tx.pending > 0) break;
      onDone?.(tx);
      token = tx.token;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return token;
  }

  /** Transactions registered and not yet behind the checkpoint. */
  get inFlight(): number {
    return this.#queue.length - this.#head;
  }
}
