/** One line of a `test-connection` report. Pure data. */
export interface PrerequisiteCheck {
  /** Short name, e.g. `wal_level`, `acl XADD`, `maxmemory-policy`. */
  name: string;
  /** WARNING passes (exit 0) but is printed; FAILED makes the command exit 1. */
  status: "PASSED" | "FAILED" | "WARNING" | "SKIPPED";
  /** What was found and, when not PASSED, what to change. */
  detail: string;
}

export function passed(name: string, detail: string): PrerequisiteCheck {
  return { name, status: "PASSED", detail };
}

export function failed(name: string, detail: string): PrerequisiteCheck {
  return { name, status: "FAILED", detail };
}
