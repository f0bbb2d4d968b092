/**
 * `password-file: PATH`, accepted wherever a connection file takes a `password` (the
 * connection itself, `ssl.trust-store`, `ssl.key-store`, `credential-store`): the file's
 * content, with one trailing newline removed, is the password. Docker and Kubernetes secrets
 * are mounted that way, and the password then never sits in a config file or the environment.
 *
 * @module
 */
import { readFileSync, statSync } from "node:fs";
import process from "node:process";
import type { KeyPath } from "./key_path.ts";
import type { Checker } from "./schema.ts";
import { isSecretUrl } from "./secret_ref.ts";

/** A validated section that may hold a password either way. */
export interface PasswordHolder {
  password?: string;
  passwordFile?: string;
}

/**
 * Replaces the section's `password-file` by the `password` read from it. Both keys, or a
 * missing, unreadable or empty file, are problems at `password-file` naming the path; a file
 * that group or others may read is a warning.
 */
export function applyPasswordFile(
  section: PasswordHolder | undefined,
  path: KeyPath,
  c: Checker,
): void {
  if (section?.passwordFile === undefined) return;
  const file = section.passwordFile;
  delete section.passwordFile;
  const at = [...path, "password-file"];
  if (section.password !== undefined) {
    c.problem(at, "give either `password` or `password-file`, not both");
    return;
  }
  // An `arcion-sm://` path is fetched first; the file is read when the loader runs again.
  if (isSecretUrl(file)) return;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT"
      ? "file not found"
      : code === "EACCES"
      ? "permission denied"
      : code === "EISDIR"
      ? "it is a folder"
      : (err as Error).message;
    c.problem(at, `cannot read password file ${file}: ${why}`);
    return;
  }
  text = text.replace(/\r?\n$/, "");
  if (text === "") {
    c.problem(at, `password file ${file} is empty`);
    return;
  }
  if (process.platform !== "win32") {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o044) !== 0) {
      c.warn(
        at,
        `password file ${file} is readable by ${
          (mode & 0o004) !== 0 ? "others" : "its group"
        } (mode ${mode.toString(8).padStart(3, "0")}): chmod 600 it`,
      );
    }
  }
  section.password = text;
}
