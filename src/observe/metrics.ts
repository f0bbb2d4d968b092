/**
 * A small metrics registry: counters, gauges and histograms with fixed buckets and labels,
 * rendered in the Prometheus text exposition format 0.0.4. No dependency, no I/O; the hot
 * path is `inc`/`observe` on a child looked up once by its label values.
 */

export type Labels = Record<string, string>;

/** Label value escaping of the text format: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escaping: backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value as the text format writes it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelText(names: readonly string[], values: readonly string[], extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

abstract class Family<C> {
  readonly #children = new Map<string, { values: string[]; child: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith("__") || l === "le") {
        throw new Error(`invalid label name ${JSON.stringify(l)} of ${name}`);
      }
    }
  }

  protected abstract create(): C;
  abstract readonly type: "counter" | "gauge" | "histogram";

  /** The child for these label values (in labelNames order); keep it for the hot path. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label value(s)`);
    }
    const key = values.join("\u0000");
    let e = this.#children.get(key);
    if (!e) {
      e = { values, child: this.create() };
      this.#children.set(key, e);
    }
    return e.child;
  }

  children(): { values: string[]; child: C }[] {
    return [...this.#children.values()];
  }

  protected abstract samples(values: string[], child: C, out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    out.push(`# TYPE ${this.name} ${this.type}`);
    for (const { values, child } of this.#children.values()) this.samples(values, child, out);
  }
}

export class CounterChild {
  value = 0;
  inc(n = 1): void {
    if (n < 0) throw new Error("a counter only goes up");
    this.value += n;
  }
}

export class Counter extends Family<CounterChild> {
  readonly type = "counter";
  protected create(): CounterChild {
    return new CounterChild();
  }
  protected samples(values: string[], c: CounterChild, out: string[]): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(c.value)}`);
  }
  /** Sum over every child (all label values). */
  total(): number {
    let n = 0;
    for (const { child } of this.children()) n += child.value;
    return n;
  }
}

export class GaugeChild {
  value = 0;
  /** When set, the value is read at render time (RSS, lag). */
  collect: (() => number) | null = null;
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  read(): number {
    return this.collect ? this.collect() : this.value;
  }
}

export class Gauge extends Family<GaugeChild> {
  readonly type = "gauge";
  protected create(): GaugeChild {
    return new GaugeChild();
  }
  protected samples(values: string[], g: GaugeChild, out: string[]): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(g.read())}`);
  }
}

export class HistogramChild {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    // Buckets are few: a linear scan beats anything clever.
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: number[]) {
    super(name, help, labelNames);
    if (buckets.length === 0) throw new Error(`${name}: no buckets`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) throw new Error(`${name}: buckets must increase`);
    }
    if (!Number.isFinite(buckets[buckets.length - 1])) buckets = buckets.slice(0, -1);
    this.buckets = buckets;
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  protected samples(values: string[], h: HistogramChild, out: string[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += h.counts[i];
      const le = `le="${formatValue(this.buckets[i])}"`;
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, le)} ${cumulative}`);
    }
    const labels = labelText(this.labelNames, values);
    out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${h.count}`);
    out.push(`${this.name}_sum${labels} ${formatValue(h.sum)}`);
    out.push(`${this.name}_count${labels} ${h.count}`);
  }
}

/** Buckets `start, start·factor, …` (count of them), like the Prometheus clients. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(6)));
  return out;
}

export class MetricsRegistry {
  readonly #families = new Map<string, Family<unknown>>();

  #add<F extends Family<unknown>>(f: F): F {
    if (this.#families.has(f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.#families.set(f.name, f);
    return f;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: number[],
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** Every family in registration order, in the text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) f.render(out);
    return out.join("\n") + "\n";
  }
}

/** Content-Type of `render()`'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
