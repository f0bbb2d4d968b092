/** One line of a `test-connection` report. Pure data. */
export interface PrerequisiteCheck {
  /** Short name, e.g. `wal_level`, `acl XADD`, `maxmemory-policy`. */
  name: string;
  /** WARNING passes (exit 0) but is printed; FAILED makes the command exit 1. */
  status: "PASSED" | "FAILED" | "WARNING" | "SKIPPED";
  /** What was found and, when not PASSED, what to change (the `hint`, which it contains). */
  detail: string;
  /**
   * What to change, when Replicant knows: a part of `detail` (the text table and the report
   * show `detail` whole), apart for `--log-format json` (see `foundOf`).
   */
  hint?: string;
}

export function passed(name: string, detail: string): PrerequisiteCheck {
  return { name, status: "PASSED", detail };
}

/** A failed check; `hint`, when given, must be a part of `detail` (usually its end). */
export function failed(name: string, detail: string, hint?: string): PrerequisiteCheck {
  return { name, status: "FAILED", detail, ...(hint === undefined ? {} : { hint }) };
}

/** A check that passes but is printed; `hint` as for `failed`. */
export function warning(name: string, detail: string, hint?: string): PrerequisiteCheck {
  return { name, status: "WARNING", detail, ...(hint === undefined ? {} : { hint }) };
}

/**
 * What a check found: its detail up to the hint, without the separator before it (`: `,
 * `; `, ` (`); the whole detail when it has no hint.
 */
export function foundOf(check: PrerequisiteCheck): string {
  const at = check.hint ? check.detail.lastIndexOf(check.hint) : -1;
  if (at <= 0) return check.detail;
  return check.detail.slice(0, at).replace(/[\s:;,(]+$/, "");
}

/** The status of a group of checks: SKIPPED when none ran, FAILED when one failed. */
export function statusOf(list: PrerequisiteCheck[]): "PASSED" | "FAILED" | "SKIPPED" {
  return list.length === 0
    ? "SKIPPED"
    : list.some((c) => c.status === "FAILED")
    ? "FAILED"
    : "PASSED";
}
