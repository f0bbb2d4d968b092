/**
 * JSON read without parsing values: the text of each value exactly as written, so entries
 * compare byte for byte (JSON.parse would round integers beyond 2^53 and forget how a number
 * or a string was spelled). Pure; the input is JSON that Replicant wrote.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Index just after the JSON value that starts at `i` (no leading whitespace). */
export function valueEnd(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return stringEnd(text, i);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0;
    for (let p = i; p < text.length; p++) {
      const ch = text.charCodeAt(p);
      if (ch === QUOTE) p = stringEnd(text, p) - 1;
      else if (ch === 0x7b || ch === 0x5b) depth++;
      else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
        if (--depth === 0) return p + 1;
      }
    }
    throw new SyntaxError(`unterminated JSON value at ${i}`);
  }
  // number, true, false, null
  let p = i;
  while (p < text.length) {
    const ch = text.charCodeAt(p);
    if (ch === 0x2c || ch === 0x7d || ch === 0x5d || ch <= 0x20) break;
    p++;
  }
  if (p === i) throw new SyntaxError(`no JSON value at ${i}`);
  return p;
}

/** Index just after the JSON string whose opening quote is at `i`. */
function stringEnd(text: string, i: number): number {
  for (let p = i + 1; p < text.length; p++) {
    const ch = text.charCodeAt(p);
    if (ch === BACKSLASH) p++;
    else if (ch === QUOTE) return p + 1;
  }
  throw new SyntaxError(`unterminated JSON string at ${i}`);
}

function skipSpace(text: string, p: number): number {
  while (p < text.length && text.charCodeAt(p) <= 0x20) p++;
  return p;
}

/**
 * The members of a JSON object as [name, value text] in written order; names decoded,
 * values exactly as written.
 */
export function objectMembers(text: string): [string, string][] {
  const out: [string, string][] = [];
  let p = skipSpace(text, 0);
  if (text.charCodeAt(p) !== 0x7b) throw new SyntaxError("not a JSON object");
  p = skipSpace(text, p + 1);
  if (text.charCodeAt(p) === 0x7d) return out;
  for (;;) {
    const nameEnd = stringEnd(text, p);
    const raw = text.slice(p + 1, nameEnd - 1);
    const name = raw.includes("\\") ? JSON.parse(text.slice(p, nameEnd)) as string : raw;
    p = skipSpace(text, nameEnd);
    if (text.charCodeAt(p) !== 0x3a /* : */) throw new SyntaxError(`expected ':' at ${p}`);
    p = skipSpace(text, p + 1);
    const end = valueEnd(text, p);
    out.push([name, text.slice(p, end)]);
    p = skipSpace(text, end);
    const ch = text.charCodeAt(p);
    if (ch === 0x7d) return out;
    if (ch !== 0x2c) throw new SyntaxError(`expected ',' or '}' at ${p}`);
    p = skipSpace(text, p + 1);
  }
}

const SCHEMA_OPEN = '{"schema":';
const PAYLOAD = '"payload":';

/**
 * The payload of a key or value Replicant wrote with its schema half
 * (`{"schema":…,"payload":X}` → X), or the text itself without one. The schema half holds
 * only names and types, so the first `"payload":` after it is the envelope's.
 */
export function payloadText(text: string): string {
  if (!text.startsWith(SCHEMA_OPEN)) return text;
  const at = text.indexOf(PAYLOAD, valueEnd(text, SCHEMA_OPEN.length));
  if (at < 0) return text;
  return text.slice(at + PAYLOAD.length, text.length - 1);
}

/**
 * A canonical spelling of a JSON value for comparing values whose writers may differ in
 * member order or string escapes (JSON columns): object members sorted by name, strings
 * re-escaped the one standard way, numbers and literals kept as written.
 */
export function canonicalJson(text: string): string {
  const p = skipSpace(text, 0);
  const c = text.charCodeAt(p);
  if (c === QUOTE) return JSON.stringify(JSON.parse(text.slice(p, stringEnd(text, p))));
  if (c === 0x7b) {
    const members = objectMembers(text.slice(p));
    members.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return "{" + members.map(([k, v]) => JSON.stringify(k) + ":" + canonicalJson(v)).join(",") +
      "}";
  }
  if (c === 0x5b) {
    const items: string[] = [];
    let q = skipSpace(text, p + 1);
    if (text.charCodeAt(q) === 0x5d) return "[]";
    for (;;) {
      const end = valueEnd(text, q);
      items.push(canonicalJson(text.slice(q, end)));
      q = skipSpace(text, end);
      if (text.charCodeAt(q) === 0x5d) break;
      q = skipSpace(text, q + 1);
    }
    return "[" + items.join(",") + "]";
  }
  return text.slice(p, valueEnd(text, p));
}
