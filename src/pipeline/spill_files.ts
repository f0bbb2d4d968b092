import { appendFileSync, closeSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Text lines spread over `count` files by a hash of their key, so that everything about one
 * key lands in one file, in the order it was added: a large table is then compared one
 * partition at a time, in bounded memory. Lines are buffered per file and appended in blocks.
 */
export class SpillFiles {
  readonly paths: string[];
  readonly #buffers: string[][];
  readonly #sizes: number[];
  readonly #flushAt: number;

  constructor(dir: string, name: string, readonly count: number, readonly seed = 0) {
    this.paths = Array.from({ length: count }, (_, i) => join(dir, `${name}.${i}`));
    this.#buffers = Array.from({ length: count }, () => []);
    this.#sizes = new Array(count).fill(0);
    // Every partition has a file, empty or not, so each can be read.
    for (const p of this.paths) writeFileSync(p, "");
    // At most about 16 MiB buffered over all files, at most 64 KiB per file.
    this.#flushAt = Math.max(8192, Math.min(65536, Math.floor((16 << 20) / count)));
  }

  /** Appends `line` (no newline in it) to the file of `key`. */
  add(key: string, line: string): void {
    const i = this.count === 1 ? 0 : hashKey(key, this.seed) % this.count;
    this.#buffers[i].push(line);
    this.#sizes[i] += line.length + 1;
    if (this.#sizes[i] >= this.#flushAt) this.#flush(i);
  }

  flush(): void {
    for (let i = 0; i < this.count; i++) this.#flush(i);
  }

  #flush(i: number): void {
    const lines = this.#buffers[i];
    if (lines.length === 0) return;
    appendFileSync(this.paths[i], lines.join("\n") + "\n");
    this.#buffers[i] = [];
    this.#sizes[i] = 0;
  }

  remove(): void {
    for (const p of this.paths) rmSync(p, { force: true });
  }
}

/** FNV-1a over the UTF-16 units of `key`, mixed with `seed` (another seed splits again). */
export function hashKey(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 15;
  return h >>> 0;
}

const NEWLINE = 0x0a;
const utf8 = new TextDecoder();

/** The lines of a file, read in 1 MiB blocks. */
export function* readLines(path: string): Generator<string> {
  const fd = openSync(path, "r");
  try {
    const block = new Uint8Array(1 << 20);
    let carry: Uint8Array = new Uint8Array(0);
    for (;;) {
      const n = readSync(fd, block, 0, block.length, null);
      if (n === 0) break;
      let data: Uint8Array = block.subarray(0, n);
      if (carry.length > 0) {
        const joined = new Uint8Array(carry.length + n);
        joined.set(carry);
        joined.set(data, carry.length);
        data = joined;
      }
      const last = data.lastIndexOf(NEWLINE);
      if (last < 0) {
        carry = data.slice();
        continue;
      }
      const text = utf8.decode(data.subarray(0, last));
      carry = data.slice(last + 1);
      yield* text.split("\n");
    }
    if (carry.length > 0) yield utf8.decode(carry);
  } finally {
    closeSync(fd);
  }
}
