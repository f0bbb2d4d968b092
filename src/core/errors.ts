/**
 * Typed errors. Each carries what it is about (file and key, table, stream) so the
 * message alone tells a user what to fix; `exitCode` is what the CLI exits with.
 */
export class ReplicantError extends Error {
  exitCode = 1;
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

/** Redis failed or refused (exit 1). */
export class SinkError extends ReplicantError {
  constructor(message: string, readonly stream?: string, options?: { cause?: unknown }) {
    super(message, options);
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
