/** One thing wrong (or, for warnings, worth knowing) in a configuration file. */
export interface ConfigProblem {
  /** The file as the user named it. */
  file: string;
  /** Dotted path of the key, e.g. `snapshot.threads`; empty when it concerns the whole file. */
  key: string;
  message: string;
}

/** `<file>: <key>: <message>`, or `<file>: <message>` for whole-file problems. */
export function formatProblem(problem: ConfigProblem): string {
  return problem.key === ""
    ? `${problem.file}: ${problem.message}`
    : `${problem.file}: ${problem.key}: ${problem.message}`;
}

/** Every problem on its own line, in the order found. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map(formatProblem).join("\n");
}

/**
 * Bad configuration. The message is complete and meant for the user as is: it lists every
 * problem found, so a user fixes them all in one round instead of one per run.
 */
export class ConfigError extends Error {
  /** SPEC §1: bad usage or bad configuration exits with 2. */
  readonly exitCode = 2;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(formatProblems(problems));
    this.name = "ConfigError";
    this.problems = [...problems];
  }
}
