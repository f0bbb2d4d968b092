/** One thing wrong (or, for warnings, worth knowing) in a configuration file. */
export interface ConfigProblem {
  /** The file as the user named it. */
  file: string;
  /** Dotted path of the key, e.g. `snapshot.threads`; empty when it concerns the whole file. */
  key: string;
  message: string;
  /** The command-line option or argument that named the file (`--filter`, `SRC_CONN`). */
  option?: string;
}

/**
 * `<file>: <key>: <message>`, or `<file>: <message>` for whole-file problems; the file is
 * preceded by the option that named it, when known (`--filter conf/filter/x.yaml: …`).
 */
export function formatProblem(problem: ConfigProblem): string {
  const file = problem.option ? `${problem.option} ${problem.file}` : problem.file;
  return problem.key === ""
    ? `${file}: ${problem.message}`
    : `${file}: ${problem.key}: ${problem.message}`;
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
  /** Bad usage or bad configuration exits with 2. */
  readonly exitCode = 2;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(formatProblems(problems));
    this.name = "ConfigError";
    this.problems = [...problems];
  }
}

/**
 * Runs `load` (sync or async); the problems of a ConfigError it throws also name `option`,
 * the command-line option or argument that gave the file, so the user knows what to change.
 */
export function fromOption<T>(option: string, load: () => T): T {
  const tag = (err: unknown): never => {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(err.problems.map((p) => ({ ...p, option: p.option ?? option })));
  };
  try {
    const result = load();
    return (result instanceof Promise ? result.catch(tag) : result) as T;
  } catch (err) {
    return tag(err);
  }
}
