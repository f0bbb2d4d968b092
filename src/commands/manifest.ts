import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { StateError } from "../core/errors.ts";

/** What a later run of the same id needs to know: config paths, mode, group. Never secrets. */
export interface Manifest {
  id: string;
  group: string;
  mode: string;
  source: string | null;
  target: string;
  extractor: string | null;
  applier: string | null;
  filter: string | null;
  updatedAt: string;
}

export function homeDir(home: string | undefined): string {
  return resolve(home ?? process.env.REPLICANT_HOME ?? ".");
}

export function idDir(home: string, id: string): string {
  return join(home, "data", id);
}

export function readManifest(home: string, id: string): Manifest | null {
  const path = join(idDir(home, id), "manifest.json");
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Manifest;
  } catch (err) {
    throw new StateError(
      `Cannot read ${path}: ${(err as Error).message}; remove it or use --overwrite`,
    );
  }
}

/** Written atomically (temp file + rename) so a crash never leaves half a manifest. */
export function writeManifest(home: string, manifest: Manifest): void {
  const dir = idDir(home, manifest.id);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "manifest.json");
  writeFileSync(path + ".tmp", JSON.stringify(manifest, null, 2) + "\n");
  renameSync(path + ".tmp", path);
}
