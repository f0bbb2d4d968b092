/**
 * A small declarative validator for configuration documents. Pure: it reads plain values
 * (as produced by read_yaml) and records every problem in a Checker instead of stopping at the
 * first, so a user sees all mistakes of a file at once.
 *
 * Keys are written kebab-case as in Arcion's files; the validated objects come out camelCase.
 * Arcion also reads camelCase spellings (its Secrets Manager samples use `maxConnections`),
 * so those are accepted as the same key.
 */
import { type KeyPath, keyPathId } from "./key_path.ts";
import { nearestKey } from "./nearest_key.ts";
import { isPlainMapping, type PathIssue } from "./read_yaml.ts";
import { isSecretUrl } from "./secret_ref.ts";

/** Marks a value that failed validation; the problem has been recorded already. */
export const INVALID: unique symbol = Symbol("invalid");
export type Invalid = typeof INVALID;

export interface CheckerOptions {
  /**
   * Let `arcion-sm://…` values stand in for any setting (connections only): they are
   * resolved later, so their type cannot be checked now.
   */
  deferSecrets?: boolean;
}

/** Collects problems and warnings while a document is checked. */
export class Checker {
  readonly problems: PathIssue[] = [];
  readonly warnings: PathIssue[] = [];

  constructor(
    private readonly rawScalars: ReadonlyMap<string, string> = new Map(),
    readonly options: CheckerOptions = {},
  ) {}

  problem(path: KeyPath, message: string): Invalid {
    this.problems.push({ path, message });
    return INVALID;
  }

  warn(path: KeyPath, message: string): void {
    this.warnings.push({ path, message });
  }

  /** What the user wrote for a plain scalar that YAML did not read as text. */
  raw(path: KeyPath): string | undefined {
    return this.rawScalars.get(keyPathId(path));
  }
}

export type SchemaKind = "string" | "int" | "bool" | "enum" | "list" | "map" | "object" | "custom";

type Presence<T> =
  | { kind: "required" }
  | { kind: "optional" }
  | { kind: "default"; make: (path: KeyPath, checker: Checker) => T | Invalid };

export interface Schema<T> {
  readonly kind: SchemaKind;
  readonly presence: Presence<T>;
  /** Validates a present (non-null) value. */
  parse(value: unknown, path: KeyPath, checker: Checker): T | Invalid;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/** Validates `value` (which may be absent) against `schema`. */
export function check<T>(
  schema: Schema<T>,
  value: unknown,
  path: KeyPath,
  c: Checker,
): T | Invalid {
  if (value === null || value === undefined) {
    // `key:` with nothing after it is how Arcion's samples say "use the default".
    const p = schema.presence;
    if (p.kind === "required") {
      return c.problem(
        path,
        value === null ? "required, but has no value" : "required key is missing",
      );
    }
    if (p.kind === "optional") return undefined as T;
    return p.make(path, c);
  }
  if (c.options.deferSecrets && isSecretUrl(value)) {
    if (schema.kind === "string") return value as T;
    const p = schema.presence;
    return p.kind === "default" ? p.make(path, c) : undefined as T;
  }
  return schema.parse(value, path, c);
}

export function describeValue(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  }
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a date";
  if (isPlainMapping(value)) return "a mapping";
  return String(value);
}

interface PresenceOptions<T> {
  required?: boolean;
  default?: T;
}

function presenceOf<T>(o: PresenceOptions<T>): Presence<T> {
  if (o.required) return { kind: "required" };
  if (o.default !== undefined) {
    const value = o.default;
    // Copy so no caller can mutate a shared default.
    return { kind: "default", make: () => structuredClone(value) };
  }
  return { kind: "optional" };
}

type Needed = { required: true } | { default: unknown };

// ---------------------------------------------------------------------------------------
// Scalars

export interface StringOptions extends PresenceOptions<string> {
  nonEmpty?: boolean;
  pattern?: RegExp;
  /** Message when `pattern` does not match. */
  patternMessage?: string;
}

export function str(o: StringOptions & Needed): Schema<string>;
export function str(o?: StringOptions): Schema<string | undefined>;
export function str(o: StringOptions = {}): Schema<string | undefined> {
  return {
    kind: "string",
    presence: presenceOf(o),
    parse(value, path, c) {
      let text: string;
      if (typeof value === "string") {
        text = value;
      } else if (
        typeof value === "number" || typeof value === "boolean" || typeof value === "bigint" ||
        value instanceof Date
      ) {
        // `password: 0123` or `database: 2024`: the user meant the text as written.
        text = c.raw(path) ?? String(value);
      } else {
        return c.problem(path, `must be a text value, got ${describeValue(value)}`);
      }
      if (o.nonEmpty && text.trim() === "") return c.problem(path, "must not be empty");
      if (o.pattern && !o.pattern.test(text)) {
        return c.problem(path, o.patternMessage ?? `has an invalid value ${describeValue(text)}`);
      }
      return text;
    },
  };
}

export interface IntOptions extends PresenceOptions<number> {
  min?: number;
  max?: number;
}

const INTEGER_TEXT = /^[+-]?\d+(_\d+)*$/;

export function int(o: IntOptions & Needed): Schema<number>;
export function int(o?: IntOptions): Schema<number | undefined>;
export function int(o: IntOptions = {}): Schema<number | undefined> {
  const range = o.min !== undefined && o.max !== undefined
    ? ` between ${o.min} and ${o.max}`
    : o.min !== undefined
    ? ` of at least ${o.min}`
    : o.max !== undefined
    ? ` of at most ${o.max}`
    : "";
  const expected = `must be an integer${range}`;
  return {
    kind: "int",
    presence: presenceOf(o),
    parse(value, path, c) {
      let n: number | undefined;
      if (typeof value === "number") n = value;
      // Jackson (Arcion) reads "5432" as 5432 too; env values in quotes arrive like that.
      else if (typeof value === "string" && INTEGER_TEXT.test(value.trim())) {
        n = Number(value.trim().replaceAll("_", ""));
      }
      if (n === undefined || !Number.isInteger(n)) {
        const shown = typeof value === "number"
          ? c.raw(path) ?? String(value)
          : describeValue(value);
        return c.problem(path, `${expected}, got ${shown}`);
      }
      if (!Number.isSafeInteger(n)) return c.problem(path, `${expected}, got ${n} (too large)`);
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
        return c.problem(path, `${expected}, got ${n}`);
      }
      return n;
    },
  };
}

export function bool(o: PresenceOptions<boolean> & Needed): Schema<boolean>;
export function bool(o?: PresenceOptions<boolean>): Schema<boolean | undefined>;
export function bool(o: PresenceOptions<boolean> = {}): Schema<boolean | undefined> {
  return {
    kind: "bool",
    presence: presenceOf(o),
    parse(value, path, c) {
      if (typeof value === "boolean") return value;
      const quoted = typeof value === "string" && /^(true|false)$/i.test(value.trim());
      const hint = quoted ? " (written in quotes: remove them)" : "";
      return c.problem(path, `must be true or false, got ${describeValue(value)}${hint}`);
    },
  };
}

/** One of fixed words, matched ignoring case; the result is the canonical spelling. */
export function oneOf<const V extends string>(
  values: readonly V[],
  o: PresenceOptions<NoInfer<V>> & Needed,
): Schema<V>;
export function oneOf<const V extends string>(
  values: readonly V[],
  o?: PresenceOptions<NoInfer<V>>,
): Schema<V | undefined>;
export function oneOf<const V extends string>(
  values: readonly V[],
  o: PresenceOptions<V> = {},
): Schema<V | undefined> {
  return {
    kind: "enum",
    presence: presenceOf(o),
    parse(value, path, c) {
      const text = typeof value === "string" ? value.trim() : undefined;
      const found = text === undefined
        ? undefined
        : values.find((v) => v.toLowerCase() === text.toLowerCase());
      if (found !== undefined) return found;
      const near = text === undefined ? undefined : nearestKey(text, values);
      const hint = near ? `; did you mean \`${near}\`?` : "";
      return c.problem(
        path,
        `must be one of ${values.join(", ")}, got ${describeValue(value)}${hint}`,
      );
    },
  };
}

// ---------------------------------------------------------------------------------------
// Collections

export interface ListOptions<T> extends PresenceOptions<T[]> {
  /** Absent means undefined instead of an empty list. */
  optional?: boolean;
  /** Also accept a single item written without a list. */
  single?: boolean;
  minItems?: number;
}

/** A list; absent means an empty list unless `required` or `optional`. */
export function listOf<T>(
  item: Schema<T>,
  o: ListOptions<T> & { optional: true },
): Schema<T[] | undefined>;
export function listOf<T>(item: Schema<T>, o?: ListOptions<NoInfer<T>>): Schema<T[]>;
export function listOf<T>(item: Schema<T>, o: ListOptions<T> = {}): Schema<T[] | undefined> {
  return {
    kind: "list",
    presence: o.optional
      ? { kind: "optional" }
      : presenceOf({ required: o.required, default: o.default ?? [] }),
    parse(value, path, c) {
      let items: unknown[];
      let paths: KeyPath[];
      if (Array.isArray(value)) {
        items = value;
        paths = value.map((_, i) => [...path, i]);
      } else if (o.single) {
        items = [value];
        paths = [path];
      } else {
        return c.problem(path, `must be a list, got ${describeValue(value)}`);
      }
      if (o.minItems !== undefined && items.length < o.minItems) {
        return c.problem(
          path,
          `must list at least ${o.minItems} item${o.minItems === 1 ? "" : "s"}`,
        );
      }
      const out: T[] = [];
      let failed = false;
      items.forEach((entry, i) => {
        const result = check(item, entry, paths[i], c);
        if (result === INVALID) failed = true;
        else out.push(result);
      });
      return failed ? INVALID : out;
    },
  };
}

export interface MapOptions extends PresenceOptions<never> {
  optional?: boolean;
  /** Checks each key; returns a problem message, or undefined when the key is fine. */
  checkKey?: (key: string) => string | undefined;
}

/** A mapping with keys chosen by the user (slot names, table names). Absent means empty. */
export function mapOf<T>(
  value: Schema<T>,
  o: MapOptions & { optional: true },
): Schema<Record<string, T> | undefined>;
export function mapOf<T>(value: Schema<T>, o?: MapOptions): Schema<Record<string, T>>;
export function mapOf<T>(
  value: Schema<T>,
  o: MapOptions = {},
): Schema<Record<string, T> | undefined> {
  return {
    kind: "map",
    presence: o.optional
      ? { kind: "optional" }
      : o.required
      ? { kind: "required" }
      : { kind: "default", make: () => ({}) },
    parse(input, path, c) {
      if (!isPlainMapping(input)) {
        return c.problem(path, `must be a mapping (key: value), got ${describeValue(input)}`);
      }
      const out: Record<string, T> = {};
      let failed = false;
      for (const [key, entry] of Object.entries(input)) {
        const keyProblem = o.checkKey?.(key);
        if (keyProblem !== undefined) {
          c.problem([...path, key], keyProblem);
          failed = true;
          continue;
        }
        const result = check(value, entry, [...path, key], c);
        if (result === INVALID) failed = true;
        else defineKey(out, key, result);
      }
      return failed ? INVALID : out;
    },
  };
}

// ---------------------------------------------------------------------------------------
// Objects

type Camel<S extends string> = S extends `${infer Head}-${infer Rest}`
  ? `${Head}${Capitalize<Camel<Rest>>}`
  : S;
type Simplify<T> = { [K in keyof T]: T[K] } & unknown;
type Fields = Record<string, Schema<unknown>>;
type OptionalKeys<F extends Fields> = {
  [K in keyof F]: undefined extends Infer<F[K]> ? K : never;
}[keyof F];

/** The validated form of an object schema's fields: camelCase keys, absent ones optional. */
export type ObjectOf<F extends Fields> = Simplify<
  & { [K in Exclude<keyof F, OptionalKeys<F>> & string as Camel<K>]: Infer<F[K]> }
  & { [K in OptionalKeys<F> & string as Camel<K>]?: Exclude<Infer<F[K]>, undefined> }
>;

export interface ObjectOptions<Out> {
  required?: boolean;
  /** Absent means undefined; otherwise an absent object is validated as `{}` (defaults apply). */
  optional?: boolean;
  /**
   * Keys Arcion documents that Replicant does not use: a warning each, not an error. The value
   * says why, or is empty for the standard reason.
   */
  ignored?: Readonly<Record<string, string>>;
  /** Keys valid elsewhere, with where they belong (e.g. "under `realtime`"), for a better hint. */
  misplaced?: Readonly<Record<string, string>>;
  /** Cross-field rules, run when every field is valid. */
  check?: (out: Out, path: KeyPath, c: Checker) => void;
}

export const IGNORED_REASON = "Arcion option that Replicant does not use";

export function obj<F extends Fields>(
  fields: F,
  o: ObjectOptions<ObjectOf<F>> & { optional: true },
): Schema<ObjectOf<F> | undefined>;
export function obj<F extends Fields>(
  fields: F,
  o?: ObjectOptions<ObjectOf<F>>,
): Schema<ObjectOf<F>>;
export function obj<F extends Fields>(
  fields: F,
  o: ObjectOptions<ObjectOf<F>> = {},
): Schema<ObjectOf<F> | undefined> {
  const schema: Schema<ObjectOf<F> | undefined> = {
    kind: "object",
    presence: o.required
      ? { kind: "required" }
      : o.optional
      ? { kind: "optional" }
      : { kind: "default", make: (path, c) => schema.parse({}, path, c) },
    parse(input, path, c) {
      if (!isPlainMapping(input)) {
        return c.problem(path, `must be a mapping (key: value), got ${describeValue(input)}`);
      }
      const used = new Map<string, string>();
      for (const key of Object.keys(input)) {
        const canonical = canonicalKey(key, fields);
        if (canonical !== undefined) {
          const earlier = used.get(canonical);
          if (earlier !== undefined) {
            c.problem([...path, key], `same setting as \`${earlier}\`; keep only one`);
          } else {
            used.set(canonical, key);
          }
          continue;
        }
        const ignored = ignoredReason(key, o.ignored);
        if (ignored !== undefined) {
          c.warn([...path, key], `ignored: ${ignored}`);
        } else if (key.startsWith("_")) {
          c.warn([...path, key], "ignored: Arcion internal option");
        } else if (o.misplaced && Object.hasOwn(o.misplaced, kebabCase(key))) {
          c.problem([...path, key], `not valid here; it belongs ${o.misplaced[kebabCase(key)]}`);
        } else {
          c.problem([...path, key], unknownKeyMessage(key, Object.keys(fields)));
        }
      }
      const out: Record<string, unknown> = {};
      let failed = false;
      for (const [key, field] of Object.entries(fields)) {
        const written = used.get(key);
        const value = written === undefined ? undefined : input[written];
        const result = check(field, value, [...path, written ?? key], c);
        if (result === INVALID) failed = true;
        else if (result !== undefined) out[camelCase(key)] = result;
      }
      if (failed) return INVALID;
      const typed = out as ObjectOf<F>;
      if (o.check) {
        const before = c.problems.length;
        o.check(typed, path, c);
        if (c.problems.length > before) return INVALID;
      }
      return typed;
    },
  };
  return schema;
}

/** `max-connections` → `maxConnections`. */
export function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

/** `maxConnections` → `max-connections`. */
export function kebabCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

function canonicalKey(key: string, fields: Fields): string | undefined {
  if (Object.hasOwn(fields, key)) return key;
  const kebab = kebabCase(key);
  return Object.hasOwn(fields, kebab) ? kebab : undefined;
}

function ignoredReason(key: string, ignored: Readonly<Record<string, string>> | undefined) {
  if (!ignored) return undefined;
  const found = Object.hasOwn(ignored, key)
    ? ignored[key]
    : Object.hasOwn(ignored, kebabCase(key))
    ? ignored[kebabCase(key)]
    : undefined;
  return found === undefined ? undefined : found || IGNORED_REASON;
}

export function unknownKeyMessage(key: string, valid: readonly string[]): string {
  const near = nearestKey(key, valid);
  if (near !== undefined) return `unknown key; did you mean \`${near}\`?`;
  return `unknown key; valid keys here: ${valid.join(", ")}`;
}

function defineKey(out: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------
// Escape hatch

/** A schema with hand-written parsing, for values with their own syntax (`host:port`). */
export function custom<T>(
  parse: (value: unknown, path: KeyPath, c: Checker) => T | Invalid,
  o: PresenceOptions<T> & Needed,
): Schema<T>;
export function custom<T>(
  parse: (value: unknown, path: KeyPath, c: Checker) => T | Invalid,
  o?: PresenceOptions<T>,
): Schema<T | undefined>;
export function custom<T>(
  parse: (value: unknown, path: KeyPath, c: Checker) => T | Invalid,
  o: PresenceOptions<T> = {},
): Schema<T | undefined> {
  return { kind: "custom", presence: presenceOf(o), parse };
}
