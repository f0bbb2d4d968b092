import process from "node:process";

/**
 * Bun's collector lets the heap grow far past what is live while large strings are built at
 * a high rate. A full collection when RSS passes the budget keeps memory bounded.
 * RSS rarely shrinks after a collection (the allocator keeps its pages for reuse), so the
 * next one waits until RSS has grown by GROWTH past what it was after the last: collecting
 * at every check while RSS sits above the budget would cost more time than the work itself.
 * No-op outside Bun.
 */
const RSS_BUDGET = 128 * 1024 * 1024;
const GROWTH = 48 * 1024 * 1024;

/** When to ask for a full collection, from the process's RSS. */
export class MemoryBudget {
  #lastCheck = 0;
  #afterLastGc = 0;

  collectGarbageHint(): void {
    const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
    if (!bun) return;
    // At most every 50 ms: reading RSS is a system call.
    const now = Date.now();
    if (now - this.#lastCheck < 50) return;
    this.#lastCheck = now;
    if (process.memoryUsage.rss() < Math.max(RSS_BUDGET, this.#afterLastGc + GROWTH)) return;
    bun.gc(true);
    this.#afterLastGc = process.memoryUsage.rss();
  }
}

/**
 * Process-wide by nature: RSS and the collector are the process's, not a run's. Runs that
 * each kept a budget would each force a collection on the same growth.
 */
const processBudget = new MemoryBudget();

/** Asks for a full collection when the process's RSS passed the budget (see above). */
export function collectGarbageHint(): void {
  processBudget.collectGarbageHint();
}
