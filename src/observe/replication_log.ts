import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * trace.log and error.log of a replication id (SPEC §6). Lines are appended synchronously:
 * they are rare, and a crash must not lose the line that explains it.
 */
export class ReplicationLog {
  readonly trace: string;
  readonly error: string;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.trace = join(dir, "trace.log");
    this.error = join(dir, "error.log");
  }

  info(message: string): void {
    appendFileSync(this.trace, `${new Date().toISOString()} INFO ${message}\n`);
  }

  warn(message: string): void {
    appendFileSync(this.trace, `${new Date().toISOString()} WARN ${message}\n`);
  }

  fail(message: string): void {
    const line = `${new Date().toISOString()} ERROR ${message}\n`;
    appendFileSync(this.trace, line);
    appendFileSync(this.error, line);
  }
}
