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
}
