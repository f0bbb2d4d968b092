/** One block of a ByteArena: entries are slices of `bytes[0, used)`. */
export class ArenaBlock {
  used = 0;
  /** Queued entries that still point into this block. */
  holds = 0;
  /** Held at least once: only such blocks are recycled (a caller that never holds keeps its entries). */
  tracked = false;
  constructor(readonly bytes: Uint8Array) {}
}

/**
 * Blocks that streamed entries are encoded into, reused once nothing points into them.
 * A fresh block per megabyte of entries cost more CPU than encoding them (Bun zeroes each
 * one, then its collector has to find it dead) and let RSS climb between collections; a
 * block comes back when the last entry that was written into it is accepted (`release`).
 * A block never released (its entries dropped some other way) is simply collected.
 */
export class ByteArena {
  #current: ArenaBlock;
  #free: ArenaBlock[] = [];

  constructor(readonly blockBytes = 1024 * 1024, readonly maxFree = 8) {
    this.#current = new ArenaBlock(new Uint8Array(0));
  }

  /** The block to write `need` bytes into at its `used`; a new or free one when full. */
  room(need: number): ArenaBlock {
    const b = this.#current;
    if (b.bytes.length - b.used >= need) return b;
    this.#retire(b);
    const next = need <= this.blockBytes ? this.#free.pop() : undefined;
    this.#current = next ?? new ArenaBlock(new Uint8Array(Math.max(this.blockBytes, need)));
    this.#current.used = 0;
    this.#current.tracked = false;
    return this.#current;
  }

  /** An entry pointing into `block` waits: the block is not written over until released. */
  hold(block: ArenaBlock): void {
    block.holds++;
    block.tracked = true;
  }

  /** An entry pointing into `block` is done with: the block may serve again. */
  release(block: ArenaBlock): void {
    if (--block.holds === 0 && block !== this.#current) this.#retire(block);
  }

  /** Blocks waiting to serve again (for tests). */
  get free(): number {
    return this.#free.length;
  }

  #retire(b: ArenaBlock): void {
    if (!b.tracked || b.holds > 0 || b.bytes.length !== this.blockBytes) return;
    if (this.#free.length < this.maxFree && !this.#free.includes(b)) this.#free.push(b);
  }
}
