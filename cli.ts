#!/usr/bin/env -S deno run -A
/**
 * Command line of Replicant: parses arguments and calls mod.ts. Nothing else lives here.
 */
import process from "node:process";
import { Command, CommanderError, Option } from "commander";
import {
  cleanupIndoubt,
  type CommonOptions,
  errorOutput,
  fetchSchemas,
  idOfArgv,
  logFormatOfArgv,
  replicate,
  routeConsoleToJson,
  testConnection,
  usageOutput,
  verify,
  versionText,
} from "./mod.ts";

const argv = process.argv.slice(2);
const logFormat = logFormatOfArgv(argv);
if (logFormat === "json") routeConsoleToJson(idOfArgv(argv));

/** Help is laid out for 80 columns (less on a narrower terminal), wherever it goes. */
const HELP_WIDTH = 80;
const helpWidth = (stream: { isTTY?: boolean; columns?: number }) =>
  stream.isTTY && stream.columns ? Math.min(HELP_WIDTH, stream.columns) : HELP_WIDTH;

const program = new Command("replicant")
  .description(
    "Replicate MySQL/MariaDB and PostgreSQL tables into Redis Streams: a consistent " +
      "snapshot, then realtime changes in commit order, nothing lost and nothing duplicated.",
  )
  .version(versionText(), "-V, --version", "print version, commit, build date and compiler")
  .option("--verbose", "print stack traces of internal errors")
  .exitOverride()
  .configureOutput({
    outputError: (text, write) =>
      write(usageOutput(text, logFormat, idOfArgv(argv), commandOfArgv(argv))),
    getOutHelpWidth: () => helpWidth(process.stdout),
    getErrHelpWidth: () => helpWidth(process.stderr),
  })
  .addHelpText(
    "after",
    `
Connection files follow Arcion Replicant's layout: conf/conn/postgresql.yaml or
conf/conn/mysql.yaml (the source) and conf/conn/redis_stream.yaml (the target).

Examples:
  replicant snapshot conf/conn/postgresql.yaml conf/conn/redis_stream.yaml \\
      --filter conf/filter/postgresql_filter.yaml --id quickstart
  replicant full conf/conn/mysql.yaml conf/conn/redis_stream.yaml \\
      --filter conf/filter/mysql_filter.yaml --id shop
  replicant realtime conf/conn/redis_stream.yaml --id shop --resume
  replicant test-connection conf/conn/mysql.yaml conf/conn/redis_stream.yaml
  replicant verify conf/conn/mysql.yaml conf/conn/redis_stream.yaml --id shop

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration,
3 finished with skipped tables (verify: tables it could not verify),
4 stopped with in-doubt entries, 5 a gap: the source cannot deliver every
change after the checkpoint, 6 verify found differences.
More: README.md and docs/ (configuration, entry format, operations, guarantees).`,
  );

/** The subcommand the arguments name (the first word that is one), for a usage error's pointer. */
function commandOfArgv(args: string[]): string | undefined {
  const first = args.find((a) => !a.startsWith("-"));
  return program.commands.some((c) => c.name() === first) ? first : undefined;
}

/** `--log-format`, the same for every command. */
function logFormatOption(): Option {
  return new Option(
    "--log-format <format>",
    "text, or json: one JSON object a line on stdout, stderr and in the logs",
  ).choices(["text", "json"]).default("text");
}

function replicationCommand(name: "snapshot" | "realtime" | "full", summary: string): Command {
  return program.command(name)
    .description(summary)
    .argument("<conn...>", "SRC_CONN DST_CONN, or only DST_CONN with --source or a saved --id")
    .option("--source <file>", "source connection file, when only DST_CONN is given")
    .option("--extractor <file>", "extractor settings (conf/src/*.yaml)")
    .option("--applier <file>", "applier settings (conf/dst/redis_stream.yaml)")
    .option("--filter <file>", "which tables and columns to replicate (conf/filter/*.yaml)")
    .option("--id <id>", "replication id: names state, logs and internal streams", "default")
    .option(
      "--replication-group <name>",
      "replication group, part of internal stream names",
      "default",
    )
    .option("--overwrite", "forget earlier state of this id and start over")
    .option("--resume", "continue this id from its last checkpoint")
    .addOption(
      new Option("--replace-existing", "delete existing target streams before the snapshot")
        .conflicts(["truncateExisting", "appendExisting"]),
    )
    .addOption(new Option("--replace").hideHelp())
    .addOption(
      new Option("--truncate-existing", "empty existing target streams (keeps consumer groups)")
        .conflicts(["appendExisting"]),
    )
    .option("--append-existing", "add snapshot entries after existing ones")
    .option(
      "--home <dir>",
      "where data/<id>/ lives (default $REPLICANT_HOME or the current folder)",
    )
    .option(
      "--progress-interval <s>",
      "seconds between snapshot progress lines (default 5; 0.5 on a terminal)",
    )
    .option(
      "--metrics-port <port>",
      "serve /metrics (Prometheus) and /health on this port (0: off)",
    )
    .option("--metrics-host <host>", "address the metrics server binds", "127.0.0.1")
    .addOption(logFormatOption())
    .option(
      "--stats-interval <s>",
      "seconds between per-table statistics in trace.log (json: on stderr too)",
      "60",
    );
}

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const run = (fn: () => Promise<number>) => async () => {
    exitCode = await fn();
  };
  const common = (cmd: Command): CommonOptions => ({ ...program.opts(), ...cmd.opts() });

  const modes = {
    snapshot: "copy every selected row into Redis Streams, then stop",
    realtime: "stream changes from now (or from the checkpoint with --resume)",
    full: "snapshot, then realtime from the snapshot's exact point",
  } as const;
  for (const [mode, summary] of Object.entries(modes)) {
    const cmd = replicationCommand(mode as keyof typeof modes, summary);
    if (mode !== "snapshot") {
      cmd.option(
        "--reinitialize <file>",
        "with --resume: add, remove or take again tables (Arcion's reinitialize file: " +
          "catalog, schema, add-tables, remove-tables, reinit-tables) while the others stream",
      );
    }
    if (mode === "full") {
      cmd.option(
        "--terminate-post-snapshot",
        "stop after the snapshot; --resume later continues with realtime",
      );
    }
    cmd.action((conns: string[], _opts, self: Command) =>
      run(() => replicate(mode as keyof typeof modes, conns, common(self)))()
    );
  }

  program.command("fetch-schemas")
    .description("write schemas.yaml with the newest schema of each replicated table")
    .argument("[conn]", "DST_CONN (or a source connection file); default: the id's manifest")
    .option("--id <id>", "replication id", "default")
    .option("--replication-group <name>", "replication group", "default")
    .option("--output-file <file>", "where to write", "schemas.yaml")
    .option("--filter <file>", "only tables this filter selects")
    .option("--home <dir>", "where data/<id>/ lives")
    .addOption(logFormatOption())
    .action((conn: string | undefined, _o, self: Command) =>
      run(() => fetchSchemas(conn, common(self)))()
    );

  program.command("cleanup-indoubt")
    .description("delete entries listed in the in-doubt file of an id (after exit code 4)")
    .argument("[conn]", "DST_CONN; default: the id's manifest")
    .option("--id <id>", "replication id", "default")
    .option("--replication-group <name>", "replication group", "default")
    .option("--dry-run", "only list what would be deleted")
    .option("--home <dir>", "where data/<id>/ lives")
    .addOption(logFormatOption())
    .action((conn: string | undefined, _o, self: Command) =>
      run(() => cleanupIndoubt(conn, common(self)))()
    );

  program.command("verify")
    .description(
      "rebuild each table from its streams and compare every row and column with the source " +
        "at one consistent point (also while replication runs)",
    )
    .argument("<conn...>", "SRC_CONN DST_CONN, or only DST_CONN with --source or a saved --id")
    .option("--source <file>", "source connection file, when only DST_CONN is given")
    .option("--extractor <file>", "extractor settings (default: the id's manifest)")
    .option("--applier <file>", "applier settings: stream names and format (default: manifest)")
    .option("--filter <file>", "which tables to verify (default: the id's manifest)")
    .option("--tables <names...>", "only these tables (qualified names, or their unique ends)")
    .option("--id <id>", "replication id", "default")
    .option("--replication-group <name>", "replication group", "default")
    .option(
      "--wait-timeout <s>",
      "seconds to wait for the replication to reach the source's point",
      "300",
    )
    .option("--spill-dir <dir>", "where temporary partitions go (default: data/<id>/)")
    .option("--home <dir>", "where data/<id>/ lives")
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Prints, per table, the rows in the source and rebuilt from the streams, the keys
missing, extra and different (a few samples of each). Exit 0: every table equal;
6: a table differs; 3: none differs, but some could not be verified (a stream
trimmed by retention). More: docs/verify.md.`,
    )
    .action((conns: string[], _o, self: Command) => run(() => verify(conns, common(self)))());

  program.command("test-connection")
    .description("connect, check credentials, privileges and CDC settings, and report")
    .argument("<conn...>", "connection files")
    .option("--id <id>", "replication id (where the report is written)", "default")
    .option("--validate <file>", "Arcion validation file: end-point-type, mode, which checks")
    .option(
      "--filter <file>",
      "the tables a run selects (privileges; PostgreSQL: replica identity, publication)",
    )
    .option("--replication-group <name>", "replication group (the publication's default name)")
    .option("--extractor <file>", "MySQL/MariaDB: check this extractor's heartbeat table")
    .option("--home <dir>", "where data/<id>/ lives")
    .addOption(logFormatOption())
    .action((conns: string[], _o, self: Command) =>
      run(() => testConnection(conns, common(self)))()
    );

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      if (err.code === "commander.help") return 0;
      return 2;
    }
    const verbose = argv.includes("--verbose");
    const { text, code } = errorOutput(err, { verbose, format: logFormat, id: idOfArgv(argv) });
    process.stderr.write(text);
    return code;
  }
  return exitCode;
}

process.exitCode = await main(argv);
// Open handles (pools, timers) must not keep a finished run alive.
process.exit();
