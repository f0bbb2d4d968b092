/**
 * Typed errors. Each carries what it is about (file and key, table, stream) so the
 * message alone tells a user what to fix; `exitCode` is what the CLI exits with.
 */
export class ReplicantError extends Error {
  exitCode = 1;
  /** Worth another try from the checkpoint: see isRetriable. */
  retriable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command-line usage (exit 2). */
export class UsageError extends ReplicantError {
  override exitCode = 2;
}

/** A problem with the state of a replication id (exit 2: the user must choose an option). */
export class StateError extends ReplicantError {
  override exitCode = 2;
}

/** The source database failed or refused (exit 1). */
export class SourceError extends ReplicantError {
  constructor(message: string, readonly table?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The source cannot be replicated as configured without breaking the application that uses
 * it or losing changes (a table without replica identity, a publication Replicant may not
 * create or change, a partition selected twice): refused before anything is created on the
 * source (exit 2). The message names what is missing and how to fix it.
 */
export class SourceSetupError extends SourceError {
  override exitCode = 2;
}

/**
 * The connection to the source failed (server restart, cut connection, PostgreSQL's
 * walsender terminated): the pipeline may start the source again from its last checkpoint.
 */
export class SourceConnectionError extends SourceError {
  override retriable = true;
}

/** Redis failed or refused (exit 1). */
export class SinkError extends ReplicantError {
  constructor(message: string, readonly stream?: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Fewer replicas than `wait-for-replicas` acknowledged a batch that landed on its master. The
 * entries are there, but could be lost with the master: retriable, so the caller handles it
 * like a lost connection (looks at what landed, undoes or skips it, retries).
 */
export class ReplicaWaitError extends SinkError {
  override retriable = true;
  constructor(stream: string, acked: number, wanted: number, timeoutMs: number, where: string) {
    super(
      `only ${acked} of ${wanted} replica(s) acknowledged a batch into "${stream}" on ${where} ` +
        `within ${timeoutMs} ms (applier wait-for-replicas: ${wanted})`,
      stream,
    );
  }
}

/** Existing target streams without a write mode (exit 2). */
export class ExistingStreamsError extends ReplicantError {
  override exitCode = 2;
  constructor(readonly streams: string[]) {
    super(
      `Cannot snapshot: ${streams.length} target stream(s) already exist: ${
        streams.slice(0, 20).join(", ")
      }${streams.length > 20 ? `, … (${streams.length - 20} more)` : ""}.\n` +
        "Choose what to do with them: --replace-existing (delete and rewrite), " +
        "--truncate-existing (empty them, keep consumer groups) or --append-existing (add after).",
    );
  }
}

/**
 * A slot or publication that is not this replication's: it belongs to another group/id, or
 * to nobody Replicant knows (exit 2). Nothing was created or dropped.
 */
export class OwnershipError extends ReplicantError {
  override exitCode = 2;
  constructor(message: string, readonly resource: string, readonly owner: string | null) {
    super(message);
  }
}

/** What the checkpoint needs from the source, and what the source can deliver instead. */
export interface SourceGap {
  /** The position every change after which must still come (the checkpoint). */
  checkpoint: string;
  /** What the source can deliver now (slot position, oldest binlog, server). */
  available: string;
  /** Why the two do not meet, in a sentence. */
  reason: string;
}

/**
 * The source cannot deliver every change after the checkpoint (slot moved past it or
 * recreated, binlog purged, GTIDs missing, another server): replication stops instead of
 * going on from a later point (exit 5). The message names the checkpoint, what the source
 * can deliver, the tables affected and the command that takes them anew.
 */
export class GapError extends ReplicantError {
  override exitCode = 5;
  constructor(
    readonly gap: SourceGap,
    readonly tables: readonly string[] = [],
    readonly recovery: string | null = null,
  ) {
    super(gapMessage(gap, tables, recovery));
  }

  /** The same gap, with the tables it affects and the command that recovers them. */
  explained(tables: readonly string[], recovery: string | null): GapError {
    return new GapError(
      this.gap,
      this.tables.length > 0 ? this.tables : tables,
      this.recovery ?? recovery,
    );
  }
}

function gapMessage(gap: SourceGap, tables: readonly string[], recovery: string | null): string {
  const shown = tables.slice(0, 20).join(", ") +
    (tables.length > 20 ? `, … (${tables.length - 20} more)` : "");
  return [
    `Gap: the source can no longer deliver every change after the checkpoint, so replication ` +
    `stops rather than go on from a later point. ${gap.reason}`,
    `  checkpoint: ${gap.checkpoint}`,
    `  the source can deliver: ${gap.available}`,
    ...(tables.length > 0 ? [`  tables affected: ${shown}`] : []),
    `  to recover, take the tables anew (a new snapshot, then realtime)` +
    (recovery ? `:\n    ${recovery}` : " with `replicant full … --overwrite --replace-existing`"),
  ].join("\n");
}

/**
 * A start the source cannot serve: the changes from the asked point on are not all in its
 * log any more (or never were: a slot created after it). Replicant refuses instead of
 * starting later: a gap (exit 5). `start` names the start asked for, `available` what the
 * source can deliver instead, `reason` why the two do not meet.
 */
export function startNotServable(start: string, available: string, reason: string): never {
  throw new GapError({
    checkpoint: `${start} (extractor realtime.start-position)`,
    available,
    reason: `${reason} Choose a later start-position, or leave it out to start now, and run ` +
      "again with --overwrite.",
  });
}

/** One entry that a failed GLOBAL batch left in Redis and could not delete. */
export interface InDoubtEntry {
  stream: string;
  id: string;
}

/**
 * GLOBAL stopped with entries in doubt (exit code 4): they are listed in `file`, and
 * `replicant cleanup-indoubt` removes them.
 */
export class InDoubtError extends ReplicantError {
  override exitCode = 4;
  constructor(message: string, readonly file: string | null, readonly entries: InDoubtEntry[]) {
    super(message);
  }
}

/**
 * Whether an error is worth another try from the checkpoint, with backoff (a lost connection,
 * a restarting server, too few replicas): errors say so by their `retriable` mark, which an
 * error class sets for all its errors or markRetriable sets on one. Errors of the data
 * (decoding, a refused value) are not retried.
 */
export function isRetriable(err: unknown): boolean {
  return (err as { retriable?: unknown } | null)?.retriable === true;
}

/** Marks one error as retriable (see isRetriable) and returns it. */
export function markRetriable<E extends object>(err: E): E {
  Object.assign(err, { retriable: true });
  return err;
}
