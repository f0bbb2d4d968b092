import process from "node:process";

/**
 * Bun's collector lets the heap grow far past what is live while large strings are built at
 * a high rate. A full collection when RSS passes the budget keeps memory bounded (SPEC §5)
 * and costs nothing while memory is low. No-op outside Bun.
 */
const RSS_BUDGET = 128 * 1024 * 1024;
let lastCheck = 0;

export function collectGarbageHint(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (!bun) return;
  // At most every 50 ms: reading RSS is a system call.
  const now = Date.now();
  if (now - lastCheck < 50) return;
  lastCheck = now;
  if (process.memoryUsage.rss() > RSS_BUDGET) bun.gc(true);
}
