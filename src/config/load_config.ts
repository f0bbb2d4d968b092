import { ConfigError, type ConfigProblem } from "./config_error.ts";
import { formatKeyPath } from "./key_path.ts";
import type { Env, PathIssue } from "./read_yaml.ts";
import { type Checker, INVALID, type Invalid } from "./schema.ts";

/** What every loaded configuration carries besides its settings. */
export interface Loaded {
  /** The file it was read from, as given; absent for built-in defaults. */
  file?: string;
  /** Ignored Arcion keys and other things the user should know; not errors. */
  warnings: ConfigProblem[];
}

export interface LoadOptions {
  /** Variables for `${VAR}`; defaults to the process environment. */
  env?: Env;
}

export function toProblems(file: string, issues: readonly PathIssue[]): ConfigProblem[] {
  return issues.map((issue) => ({ file, key: formatKeyPath(issue.path), message: issue.message }));
}

/**
 * Ends a load: throws one ConfigError with everything found (reading problems first, then
 * validation in document order), or returns the value with its file and warnings.
 */
export function finishLoad<T extends object>(
  file: string,
  readProblems: readonly PathIssue[],
  checker: Checker,
  value: T | Invalid,
): T & Loaded {
  const problems = [...toProblems(file, readProblems), ...toProblems(file, checker.problems)];
  if (problems.length > 0 || value === INVALID) failLoad(file, readProblems, checker);
  return { ...value as T, file, warnings: toProblems(file, checker.warnings) };
}

/** Throws the ConfigError for a load that cannot go on. */
export function failLoad(
  file: string,
  readProblems: readonly PathIssue[],
  checker: Checker,
): never {
  const problems = [...toProblems(file, readProblems), ...toProblems(file, checker.problems)];
  throw new ConfigError(
    problems.length > 0 ? problems : [{ file, key: "", message: "invalid configuration" }],
  );
}
