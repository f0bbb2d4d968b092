import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import type { InDoubtEntry } from "../core/errors.ts";

/** File name of the GLOBAL in-doubt log (the name Arcion gives it). */
export const INDOUBT_FILE_NAME = "replicate_io_indoubt_txn_log";

/** `<home>/data/<id>/bad_rows/replicate_io_indoubt_txn_log`. */
export function indoubtPath(home: string, id: string): string {
  return join(home, "data", id, "bad_rows", INDOUBT_FILE_NAME);
}

/** Redis stream entry ids: `<ms>-<seq>`. */
const ENTRY_ID = /^\d+-\d+$/;

/**
 * Parses the file's text: one `stream id` per line (the stream name may contain spaces; the
 * id is the last word). Blank lines and `#` comments are ignored; a line that is not of
 * this shape is an error naming its number, so a damaged file is never half-applied.
 */
export function parseIndoubt(text: string, origin = INDOUBT_FILE_NAME): InDoubtEntry[] {
  const out: InDoubtEntry[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const at = line.lastIndexOf(" ");
    const stream = at > 0 ? line.slice(0, at).trim() : "";
    const id = line.slice(at + 1);
    if (stream === "" || !ENTRY_ID.test(id)) {
      throw new Error(
        `${origin}:${i + 1}: expected "<stream> <entry id>", found ${JSON.stringify(raw)}`,
      );
    }
    const k = `${stream}\n${id}`;
    if (seen.has(k)) return;
    seen.add(k);
    out.push({ stream, id });
  });
  return out;
}

export function formatIndoubt(entries: readonly InDoubtEntry[]): string {
  return entries.map((e) => `${e.stream} ${e.id}\n`).join("");
}

/** Entries listed in the file; none when it does not exist. */
export function readIndoubt(path: string): InDoubtEntry[] {
  if (!existsSync(path)) return [];
  return parseIndoubt(readFileSync(path, "utf8"), path);
}

/** Appends entries and fsyncs the file (and, when it was new, its folder). */
export function appendIndoubt(path: string, entries: readonly InDoubtEntry[]): void {
  if (entries.length === 0) return;
  mkdirSync(dirname(path), { recursive: true });
  const created = !existsSync(path);
  const fd = openSync(path, "a");
  try {
    writeSync(fd, formatIndoubt(entries));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (created) syncDir(dirname(path));
}

/** Replaces the file's content atomically (temp file, fsync, rename, fsync of the folder). */
export function rewriteIndoubt(path: string, entries: readonly InDoubtEntry[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, formatIndoubt(entries));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncDir(dirname(path));
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some platforms cannot fsync a directory; the file itself is synced.
  }
}

/** The command that removes the in-doubt entries of an id, for messages. */
export function cleanupCommand(id: string, group: string): string {
  return `replicant cleanup-indoubt --id ${id}${
    group === "default" ? "" : ` --replication-group ${group}`
  }`;
}
