/** Options as commander parses them (camelCase), shared by every subcommand. */
export interface CommonOptions {
  verbose?: boolean;
  source?: string;
  extractor?: string;
  applier?: string;
  filter?: string;
  id?: string;
  replicationGroup?: string;
  overwrite?: boolean;
  resume?: boolean;
  /** `--reinitialize FILE` (with `--resume`): tables to add, remove or take again. */
  reinitialize?: string;
  replaceExisting?: boolean;
  replace?: boolean;
  truncateExisting?: boolean;
  appendExisting?: boolean;
  terminatePostSnapshot?: boolean;
  home?: string;
  progressInterval?: string;
  outputFile?: string;
  dryRun?: boolean;
  validate?: string;
  /** `--metrics-port` (0 or absent: off), `--metrics-host` (default 127.0.0.1). */
  metricsPort?: string;
  metricsHost?: string;
  /** `--log-format text|json`. */
  logFormat?: string;
  /** `--stats-interval <s>`: per-table statistics in trace.log (default 60). */
  statsInterval?: string;
  /** verify: `--tables` (qualified names), `--wait-timeout <s>`, `--spill-dir <dir>`. */
  tables?: string[];
  waitTimeout?: string;
  spillDir?: string;
}
