/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: every line is
 * a HELP, a TYPE, another comment, a blank line or a sample; anything else throws with the
 * line number. Checks what scrapers rely on: names, label syntax and escapes, values,
 * TYPE before the family's samples, one TYPE per family, histogram series shape.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function parseValue(text: string, where: string): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new Error(`${where}: bad escape \\${c} in HELP`);
  });
}

/** Parses `{a="x",b="y"}` starting at `s[i] === "{"`; returns labels and the index after `}`. */
function parseLabels(s: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    if (s[i] === "}") return [labels, i + 1];
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i + 1}`);
    const name = m[0];
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name ${name}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    i += name.length;
    if (s[i] !== "=" || s[i + 1] !== '"') throw new Error(`${where}: expected =" after ${name}`);
    i += 2;
    let value = "";
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === "\n") throw new Error(`${where}: raw newline in label value`);
      if (c === '"') break;
      if (c === "\\") {
        const e = s[i + 1];
        if (e === "\\") value += "\\";
        else if (e === '"') value += '"';
        else if (e === "n") value += "\n";
        else throw new Error(`${where}: bad escape \\${e ?? ""} in label value`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    labels[name] = value;
    i++; // closing quote
    if (s[i] === ",") i++;
    else if (s[i] !== "}") throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

/** Family a sample name belongs to, given the declared types (histogram/summary suffixes). */
function familyOf(name: string, families: Map<string, MetricFamily>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) {
        return base;
      }
    }
  }
  return name;
}

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seenSamples = new Set<string>();
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("exposition must end with \\n");
  const lines = text.split("\n");
  lines.pop();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const typed = new Set<string>();
  const helped = new Set<string>();
  lines.forEach((line, n) => {
    const where = `line ${n + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // another comment
      const [, kind, name, rest = ""] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (kind === "HELP") {
        if (helped.has(name)) throw new Error(`${where}: second HELP for ${name}`);
        helped.add(name);
        family(name).help = unescapeHelp(rest, where);
      } else {
        if (!TYPES.has(rest.trim())) throw new Error(`${where}: bad type ${rest}`);
        if (typed.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        const f = family(name);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE after samples of ${name}`);
        typed.add(name);
        f.type = rest.trim() as MetricFamily["type"];
      }
      return;
    }
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const name = m[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === "{") [labels, i] = parseLabels(line, i, where);
    if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(" ");
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") {
      throw new Error(`${where}: expected value [timestamp]`);
    }
    const value = parseValue(parts[0], where);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) {
      throw new Error(`${where}: bad timestamp`);
    }
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seenSamples.has(key)) throw new Error(`${where}: duplicate sample`);
    seenSamples.add(key);
    const f = family(familyOf(name, families));
    if (f.type === "counter" && (value < 0 || Number.isNaN(value))) {
      throw new Error(`${where}: counter ${name} is ${value}`);
    }
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** Buckets cumulative and ending in +Inf equal to _count, per label set. */
function checkHistogram(f: MetricFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, g = { buckets: [] });
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      g.buckets.push([parseValue(le, f.name), s.value]);
    } else if (s.name === `${f.name}_count`) g.count = s.value;
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else throw new Error(`${f.name}: unexpected sample ${s.name} in a histogram`);
  }
  for (const [key, g] of groups) {
    const where = `${f.name}${key}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`${where}: no _count/_sum`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i][0] > g.buckets[i - 1][0])) throw new Error(`${where}: le not increasing`);
      if (g.buckets[i][1] < g.buckets[i - 1][1]) throw new Error(`${where}: not cumulative`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (last[1] !== g.count) throw new Error(`${where}: +Inf bucket ${last[1]} ≠ count ${g.count}`);
  }
}

/** The value of one sample (labels must match exactly), or undefined. */
export function sampleValue(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) {
        return s.value;
      }
    }
  }
  return undefined;
}
