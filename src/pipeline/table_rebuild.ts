import { mkdirSync, statSync } from "node:fs";
import { canonicalJson, objectMembers } from "../core/raw_json.ts";
import { readLines, SpillFiles } from "./spill_files.ts";
import { collectGarbageHint } from "./memory_budget.ts";

/** How a table rebuilt from its streams differs from the source table. */
export interface TableDiff {
  sourceRows: number;
  rebuiltRows: number;
  /** In the source, not rebuilt. */
  missing: number;
  /** Rebuilt, not in the source. */
  extra: number;
  /** Same key, some column differs. */
  different: number;
  /** A few keys of each kind (key payloads as the entries write them). */
  samples: { missing: string[]; extra: string[]; different: string[] };
}

/** Keys shown per kind of difference. */
const SAMPLES = 5;
/** What a PostgreSQL update carries for a TOAST value it did not send. */
const UNAVAILABLE = '"__replicant_unavailable_value"';
/** Change-side bytes of one partition compared in memory; more is split again. */
export const PARTITION_BYTES = 32 << 20;
/** Splits of one partition at most (a single key's history cannot be split). */
const MAX_DEPTH = 4;

/**
 * One table rebuilt from its entries and compared with its source rows, in bounded memory.
 * Both sides are spilled to files partitioned by key (the changes in stream order); each
 * partition's changes are replayed into a map — set, delete, truncate — and the source rows
 * of the same partition are checked against it. A partition whose changes exceed
 * `partitionBytes` is split again first, so memory holds about one partition at a time.
 *
 * A table with a key (primary or unique) compares rows by key; a table without one compares
 * the multiset of its rows.
 */
export class TableRebuild {
  readonly #source: SpillFiles;
  readonly #changes: SpillFiles;
  #seq = 0;
  readonly #truncates: number[] = [];

  constructor(
    private readonly dir: string,
    private readonly name: string,
    partitions: number,
    readonly keyed: boolean,
    private readonly partitionBytes = PARTITION_BYTES,
  ) {
    mkdirSync(dir, { recursive: true });
    this.#source = new SpillFiles(dir, `${name}.source`, partitions);
    this.#changes = new SpillFiles(dir, `${name}.changes`, partitions);
  }

  /** A source row: its key payload and its image (keyless: the image is the identity). */
  sourceRow(key: string, row: string): void {
    if (this.keyed) this.#source.add(key, key + "\t" + row);
    else this.#source.add(row, row + "\t");
  }

  /** Keyed: the row of `key` is now `row` (snapshot read, insert, update). */
  set(key: string, row: string): void {
    this.#changes.add(key, `${this.#seq++}\tS\t${key}\t${row}`);
  }

  /** Keyed: the row of `key` is gone. */
  unset(key: string): void {
    this.#changes.add(key, `${this.#seq++}\tD\t${key}\t`);
  }

  /** Keyless: one more row `row`. */
  add(row: string): void {
    this.#changes.add(row, `${this.#seq++}\t+\t${row}\t`);
  }

  /** Keyless: one row `row` fewer. */
  remove(row: string): void {
    this.#changes.add(row, `${this.#seq++}\t-\t${row}\t`);
  }

  /** Every row is gone. */
  truncate(): void {
    this.#truncates.push(this.#seq++);
  }

  /** Writes out what is buffered (tables waiting for the GLOBAL stream hold nothing). */
  flush(): void {
    this.#source.flush();
    this.#changes.flush();
  }

  /** Compares both sides partition by partition; the files are removed. */
  compare(): TableDiff {
    this.flush();
    const diff: TableDiff = {
      sourceRows: 0,
      rebuiltRows: 0,
      missing: 0,
      extra: 0,
      different: 0,
      samples: { missing: [], extra: [], different: [] },
    };
    try {
      for (let i = 0; i < this.#changes.count; i++) {
        this.#partition(this.#changes.paths[i], this.#source.paths[i], 1, diff);
      }
    } finally {
      this.discard();
    }
    return diff;
  }

  /** Removes the spilled files. */
  discard(): void {
    this.#source.remove();
    this.#changes.remove();
  }

  #partition(changes: string, source: string, depth: number, diff: TableDiff): void {
    const size = statSync(changes).size;
    if (size > this.partitionBytes && depth <= MAX_DEPTH) {
      const parts = Math.min(64, 2 * Math.ceil(size / this.partitionBytes));
      const name = `${changes.slice(this.dir.length + 1)}.${depth}`;
      const c = new SpillFiles(this.dir, `${name}.changes`, parts, depth);
      const s = new SpillFiles(this.dir, `${name}.source`, parts, depth);
      try {
        for (const line of readLines(changes)) if (line !== "") c.add(changeKey(line), line);
        for (const line of readLines(source)) {
          if (line !== "") s.add(line.slice(0, line.indexOf("\t")), line);
        }
        c.flush();
        s.flush();
        for (let i = 0; i < parts; i++) this.#partition(c.paths[i], s.paths[i], depth + 1, diff);
      } finally {
        c.remove();
        s.remove();
      }
      return;
    }
    if (this.keyed) this.#compareKeyed(changes, source, diff);
    else this.#compareKeyless(changes, source, diff);
    collectGarbageHint();
  }

  /**
   * Reads a partition's changes in order: `apply(kind, key, row)` for each, and `clear()` at
   * each truncate of the table that falls between them (or after the last).
   */
  #replay(
    changes: string,
    clear: () => void,
    apply: (kind: number, key: string, row: string) => void,
  ): void {
    const truncates = this.#truncates;
    let t = 0;
    for (const line of readLines(changes)) {
      if (line === "") continue;
      const a = line.indexOf("\t");
      const seq = Number(line.slice(0, a));
      while (t < truncates.length && truncates[t] < seq) {
        clear();
        t++;
      }
      const b = line.indexOf("\t", a + 3);
      apply(line.charCodeAt(a + 1), line.slice(a + 3, b), line.slice(b + 1));
    }
    if (t < truncates.length) clear();
  }

  /** Each key's last row, after the last truncate. */
  #replayKeyed(changes: string): Map<string, string> {
    const rows = new Map<string, string>();
    this.#replay(changes, () => rows.clear(), (kind, key, row) => {
      if (kind === 0x44 /* D */) rows.delete(key);
      else {
        rows.set(key, row.includes(UNAVAILABLE) ? withUnchangedValues(row, rows.get(key)) : row);
      }
    });
    return rows;
  }

  #compareKeyed(changes: string, source: string, diff: TableDiff): void {
    const rows = this.#replayKeyed(changes);
    diff.rebuiltRows += rows.size;
    for (const line of readLines(source)) {
      if (line === "") continue;
      diff.sourceRows++;
      const tab = line.indexOf("\t");
      const key = line.slice(0, tab);
      const rebuilt = rows.get(key);
      if (rebuilt === undefined) {
        diff.missing++;
        sample(diff.samples.missing, key);
        continue;
      }
      rows.delete(key);
      if (!sameRow(rebuilt, line.slice(tab + 1))) {
        diff.different++;
        sample(diff.samples.different, key);
      }
    }
    diff.extra += rows.size;
    for (const key of rows.keys()) {
      if (diff.samples.extra.length >= SAMPLES) break;
      diff.samples.extra.push(key);
    }
  }

  #compareKeyless(changes: string, source: string, diff: TableDiff): void {
    const counts = new Map<string, number>();
    this.#replay(changes, () => counts.clear(), (kind, row) => {
      counts.set(row, (counts.get(row) ?? 0) + (kind === 0x2b /* + */ ? 1 : -1));
    });
    for (const n of counts.values()) if (n > 0) diff.rebuiltRows += n;
    for (const line of readLines(source)) {
      if (line === "") continue;
      diff.sourceRows++;
      const row = line.slice(0, line.indexOf("\t"));
      const n = counts.get(row) ?? 0;
      if (n > 0) counts.set(row, n - 1);
      else {
        diff.missing++;
        sample(diff.samples.missing, row);
      }
    }
    for (const [row, n] of counts) {
      if (n <= 0) continue;
      diff.extra += n;
      sample(diff.samples.extra, row);
    }
  }
}

function sample(list: string[], key: string): void {
  if (list.length < SAMPLES) list.push(key);
}

/** The key of a change line (`seq`, kind, key, row separated by tabs). */
function changeKey(line: string): string {
  const a = line.indexOf("\t");
  return line.slice(a + 3, line.indexOf("\t", a + 3));
}

/**
 * Whether two row images hold the same values: the same text, or the same columns whose
 * values are the same text or the same JSON up to member order and string escapes.
 */
export function sameRow(a: string, b: string): boolean {
  if (a === b) return true;
  let x: [string, string][], y: [string, string][];
  try {
    x = objectMembers(a);
    y = objectMembers(b);
  } catch {
    return false;
  }
  if (x.length !== y.length) return false;
  const other = new Map(y);
  for (const [name, value] of x) {
    const v = other.get(name);
    if (v === undefined) return false;
    if (v !== value && canonicalJson(v) !== canonicalJson(value)) return false;
  }
  return true;
}

/** An update's image with the TOAST values it did not send taken from the previous row. */
function withUnchangedValues(row: string, previous: string | undefined): string {
  if (previous === undefined) return row;
  const before = new Map(objectMembers(previous));
  return "{" + objectMembers(row).map(([name, value]) =>
    JSON.stringify(name) + ":" +
    (value === UNAVAILABLE ? before.get(name) ?? value : value)
  ).join(",") + "}";
}
