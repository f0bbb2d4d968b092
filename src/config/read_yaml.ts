import { readFileSync } from "node:fs";
import process from "node:process";
import { type Document, isAlias, isMap, isScalar, isSeq, parse, parseDocument } from "yaml";
import { ConfigError } from "./config_error.ts";
import { type KeyPath, keyPathId } from "./key_path.ts";

/** Environment used for `${VAR}` substitution; injectable so tests need not touch the process. */
export type Env = Readonly<Record<string, string | undefined>>;

/** A problem found while reading, addressed by path; loaders turn it into a ConfigProblem. */
export interface PathIssue {
  path: KeyPath;
  message: string;
}

export interface YamlDocument {
  file: string;
  /** The top-level mapping, or null for an empty file (or one with only comments). */
  data: Record<string, unknown> | null;
  /**
   * Source text of plain scalars that YAML 1.1 turned into something other than a string,
   * keyed by keyPathId. Lets a string setting keep what the user typed: `password: 0123`
   * is the octal number 83 in YAML 1.1, but the password is "0123".
   */
  rawScalars: ReadonlyMap<string, string>;
  /** `${VAR}` problems; they do not stop reading so they are reported with all the others. */
  problems: PathIssue[];
}

// Aliases can point at an ancestor; without a bound a hostile file would recurse forever.
const MAX_DEPTH = 64;

const ENV_REFERENCE = /\$\{([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Reads a configuration file. Throws ConfigError when it cannot be read or is not valid YAML. */
export function readYaml(file: string, env: Env = process.env): YamlDocument {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError([{ file, key: "", message: `cannot read the file: ${osReason(error)}` }]);
  }
  return parseYaml(text, file, env);
}

/** Parses configuration text; `file` is only used in messages. */
export function parseYaml(text: string, file: string, env: Env = process.env): YamlDocument {
  // YAML 1.1 is what Arcion's (SnakeYAML) files are written for: `10_000` is a number there.
  const doc = parseDocument(text, {
    version: "1.1",
    prettyErrors: true,
    // Keys are compared as written: `y` and `on` are both `true` in YAML 1.1 yet distinct keys.
    uniqueKeys: (a, b) => a === b || writtenKey(a) === writtenKey(b),
  });
  if (doc.errors.length > 0) {
    // One mistake often cascades into several parser errors; the first is the one to fix.
    const error = doc.errors[0];
    const at = error.linePos?.[0];
    const what = error.message.split(" at line ")[0];
    const where = at ? ` at line ${at.line}, column ${at.col}` : "";
    throw new ConfigError([{ file, key: "", message: `invalid YAML${where}: ${what}` }]);
  }
  const walker = new Walker(text, doc, env);
  const data = walker.toJs(doc.contents, [], 0);
  if (data !== null && !isPlainMapping(data)) {
    const found = Array.isArray(data) ? "a list" : `the single value ${JSON.stringify(data)}`;
    throw new ConfigError([{
      file,
      key: "",
      message:
        `the file must hold a mapping of \`key: value\` lines at the top level, found ${found}`,
    }]);
  }
  return { file, data, rawScalars: walker.raw, problems: walker.problems };
}

export function isPlainMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

class Walker {
  readonly raw = new Map<string, string>();
  readonly problems: PathIssue[] = [];

  constructor(
    private readonly text: string,
    private readonly doc: Document,
    private readonly env: Env,
  ) {}

  toJs(node: unknown, path: KeyPath, depth: number): unknown {
    if (depth > MAX_DEPTH) {
      this.problems.push({
        path,
        message: `nesting deeper than ${MAX_DEPTH} levels (alias loop?)`,
      });
      return null;
    }
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return this.toJs(node.resolve(this.doc), path, depth + 1);
    if (isScalar(node)) return this.scalar(node, path);
    if (isSeq(node)) return node.items.map((item, i) => this.toJs(item, [...path, i], depth + 1));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      const merges: unknown[] = [];
      for (const pair of node.items) {
        if (isScalar(pair.key) && typeof pair.key.value === "symbol") {
          merges.push(pair.value);
          continue;
        }
        const key = this.keyText(pair.key);
        define(out, key, this.toJs(pair.value, [...path, key], depth + 1));
      }
      // YAML 1.1 merge keys: explicit keys win, then earlier merged mappings over later ones.
      for (const merge of merges) {
        const target = isAlias(merge) ? merge.resolve(this.doc) : merge;
        const sources = isSeq(target) ? target.items : [target];
        for (const source of sources) {
          const value = this.toJs(source, path, depth + 1);
          if (!isPlainMapping(value)) continue;
          for (const [key, item] of Object.entries(value)) {
            if (!Object.hasOwn(out, key)) define(out, key, item);
          }
        }
      }
      return out;
    }
    return null;
  }

  private keyText(key: unknown): string {
    if (isScalar(key)) {
      // YAML 1.1 reads a plain `y` or `on` key as `true`: keep what was written.
      if (key.type === "PLAIN") return this.sourceOf(key);
      return String(key.value);
    }
    if (key === null || key === undefined) return "";
    return String(key);
  }

  private scalar(
    node: { value: unknown; type?: string; source?: string; range?: unknown },
    path: KeyPath,
  ): unknown {
    const value = node.value;
    if (typeof value === "string") {
      if (!value.includes("${")) return value;
      const substituted = this.substitute(value, path);
      if (node.type === "PLAIN" && substituted !== value) {
        // `port: ${PORT}` should behave as if the number had been written there.
        const resolved = resolvePlain(substituted);
        if (resolved !== substituted) this.raw.set(keyPathId(path), substituted);
        return resolved;
      }
      return substituted;
    }
    if (value !== null && value !== undefined && node.type === "PLAIN") {
      this.raw.set(keyPathId(path), this.sourceOf(node));
    }
    return value ?? null;
  }

  private sourceOf(node: { source?: string; range?: unknown; value: unknown }): string {
    if (typeof node.source === "string") return node.source;
    const range = node.range as [number, number, number] | undefined;
    return range ? this.text.slice(range[0], range[1]) : String(node.value);
  }

  private substitute(value: string, path: KeyPath): string {
    return value.replace(ENV_REFERENCE, (whole, name: string) => {
      if (!ENV_NAME.test(name)) {
        this.problems.push({
          path,
          message: `\`${whole}\` is not supported: only \${NAME} with a variable name is replaced`,
        });
        return whole;
      }
      const found = this.env[name];
      if (found === undefined) {
        this.problems.push({ path, message: `environment variable ${name} is not set` });
        return whole;
      }
      return found;
    });
  }
}

function writtenKey(node: unknown): unknown {
  if (!isScalar(node)) return node;
  if (node.type === "PLAIN" && typeof node.source === "string") return node.source;
  return String(node.value);
}

function resolvePlain(text: string): unknown {
  try {
    const value = parse(text, { version: "1.1" });
    return typeof value === "number" || typeof value === "boolean" ? value : text;
  } catch {
    return text;
  }
}

// A key named `__proto__` must become a key, not change the object's prototype.
function define(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

/** What went wrong with a file, in words (`no such file (ENOENT)`). */
export function osReason(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  const reasons: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "it is a directory",
    ENOTDIR: "a part of the path is not a directory",
    ELOOP: "too many symbolic links",
  };
  if (typeof code === "string" && reasons[code]) return `${reasons[code]} (${code})`;
  return error instanceof Error ? error.message : String(error);
}
