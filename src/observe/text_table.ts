/**
 * Renders rows as an aligned plain-text table (numbers right-aligned). Pure. With `width`,
 * the last column is wrapped at spaces onto continuation lines so each line fits in `width`
 * columns, as long as the other columns leave it `MIN_WRAPPED` of them.
 */
export function renderTable(
  header: string[],
  rows: string[][],
  options: { width?: number } = {},
): string {
  const last = header.length - 1;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const numeric = header.map((_, i) =>
    rows.length > 0 && rows.every((r) => /^[-\d.,:%]*[kMGs]?(\/s)?$|^-$/.test(r[i] ?? ""))
  );
  let lines = rows;
  if (options.width !== undefined && !numeric[last]) {
    const before = widths.slice(0, last).reduce((sum, w) => sum + w + 2, 0);
    const room = Math.max(MIN_WRAPPED, options.width - before);
    if (widths[last] > room) {
      lines = rows.flatMap((r) =>
        wrapText(r[last] ?? "", room).map((part, k) =>
          k === 0 ? [...r.slice(0, last), part] : [...header.slice(0, last).map(() => ""), part]
        )
      );
      widths[last] = Math.max(header[last].length, ...lines.map((r) => r[last].length));
    }
  }
  const line = (cells: string[]) =>
    cells.map((c, i) => numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(line)].join(
    "\n",
  );
}

/**
 * The width to fit a table to: COLUMNS when set (a terminal's width, as shells and tools
 * pass it), else the terminal's own; undefined when the output is not a terminal, so that
 * piped and logged rows stay whole for grep.
 */
export function terminalWidth(
  stream: { isTTY?: boolean; columns?: number },
  columns: string | undefined,
): number | undefined {
  const given = Number(columns);
  if (columns && Number.isInteger(given) && given > 0) return given;
  return stream.isTTY && stream.columns ? stream.columns : undefined;
}

/** Narrower than this, a wrapped column is more line breaks than text. */
const MIN_WRAPPED = 30;

/** `text` in lines of at most `width` characters, broken at spaces (a longer word alone). */
export function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  let current = "";
  for (const word of text.split(/ +/)) {
    if (current === "") current = word;
    else if (current.length + 1 + word.length <= width) current += " " + word;
    else {
      out.push(current);
      current = word;
    }
  }
  out.push(current);
  return out;
}

export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return "-";
  if (perSecond >= 10_000) return `${(perSecond / 1000).toFixed(0)}k/s`;
  if (perSecond >= 1000) return `${(perSecond / 1000).toFixed(1)}k/s`;
  return `${perSecond.toFixed(0)}/s`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "-";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${
    String(s % 60).padStart(2, "0")
  }`;
}
