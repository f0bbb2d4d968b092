/**
 * Operations of one replication run, started and stopped by the replicate
 * command: the metrics/health server, the Redis liveness ping that feeds /health while
 * idle, the PostgreSQL lag-in-bytes sampler, and the per-table statistics summary.
 */
import { UsageError } from "../core/errors.ts";
import { type MetricsServer, startMetricsServer } from "./metrics_server.ts";
import type { ReplicantMetrics } from "./replicant_metrics.ts";
import type { LogFormat, ReplicationLog } from "./replication_log.ts";
import { jsonLine, type LogEvent, type LogLevel, messageEvent } from "./log_event.ts";
import { StatsReporter } from "./stats_summary.ts";

export interface ObserveOptions {
  metricsPort?: string;
  metricsHost?: string;
  logFormat?: string;
  statsInterval?: string;
}

export interface ObserveSettings {
  metricsPort: number;
  metricsHost: string;
  logFormat: LogFormat;
  statsIntervalSeconds: number;
}

/** Validates `--metrics-port`, `--metrics-host`, `--log-format`, `--stats-interval`. */
export function observeSettingsOf(opts: ObserveOptions): ObserveSettings {
  const port = opts.metricsPort === undefined ? 0 : Number(opts.metricsPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--metrics-port ${opts.metricsPort}: expected a port 0-65535 (0: off)`);
  }
  const format = logFormatOf(opts);
  const interval = opts.statsInterval === undefined ? 60 : Number(opts.statsInterval);
  if (!Number.isFinite(interval) || interval < 0) {
    throw new UsageError(
      `--stats-interval ${opts.statsInterval}: expected seconds ≥ 0 (0: only at exit)`,
    );
  }
  return {
    metricsPort: port,
    metricsHost: opts.metricsHost ?? "127.0.0.1",
    logFormat: format,
    statsIntervalSeconds: interval,
  };
}

/** Validates `--log-format` (text, the default, or json); every command takes it. */
export function logFormatOf(opts: { logFormat?: string }): LogFormat {
  const format = opts.logFormat ?? "text";
  if (format !== "text" && format !== "json") {
    throw new UsageError(`--log-format ${format}: expected text or json`);
  }
  return format;
}

/** `--log-format` straight from argv, for messages written before options are parsed. */
export function logFormatOfArgv(argv: readonly string[]): LogFormat {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--log-format" && argv[i + 1] === "json") return "json";
    if (argv[i] === "--log-format=json") return "json";
  }
  return "text";
}

/** `--id` straight from argv, for the JSON lines written before options are parsed. */
export function idOfArgv(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--id") return argv[i + 1];
    if (argv[i].startsWith("--id=")) return argv[i].slice("--id=".length);
  }
  return undefined;
}

/** A stderr message of the run: as is (text) or one JSON object a line (event `log`). */
export function stderrLine(
  format: LogFormat,
  level: LogLevel,
  message: string,
  id?: string,
): string {
  if (format === "json") return jsonLine(messageEvent(level, message), id);
  return message.endsWith("\n") ? message : message + "\n";
}

export interface RunObserverDeps {
  metrics: ReplicantMetrics;
  log: ReplicationLog;
  /** Liveness of the target Redis (PING); rejects when it does not answer. */
  ping: () => Promise<unknown>;
  /** Source lag in bytes (PostgreSQL), sampled every few seconds; absent elsewhere. */
  lagBytes?: () => Promise<number | null>;
  /** Where the metrics address is announced (stderr). */
  announce: (message: string) => void;
  /** json format: where statistics events go besides trace.log (stderr). */
  emit?: (e: LogEvent) => void;
}

export class RunObserver {
  #server: MetricsServer | null = null;
  #timers: ReturnType<typeof setInterval>[] = [];
  #stats: StatsReporter;
  #pinging = false;
  #sampling = false;
  #lagBytes = 0;

  constructor(private readonly settings: ObserveSettings, private readonly deps: RunObserverDeps) {
    this.#stats = new StatsReporter(
      deps.metrics,
      deps.log,
      settings.statsIntervalSeconds,
      settings.logFormat,
      deps.emit,
    );
  }

  get port(): number | null {
    return this.#server?.port ?? null;
  }

  async start(): Promise<void> {
    this.#stats.start();
    if (this.settings.metricsPort <= 0) return;
    const { metrics } = this.deps;
    try {
      this.#server = await startMetricsServer(
        metrics,
        this.settings.metricsPort,
        this.settings.metricsHost,
      );
    } catch (err) {
      throw new UsageError(
        `--metrics-port ${this.settings.metricsPort}: cannot listen on ${this.settings.metricsHost}:${this.settings.metricsPort}: ${
          (err as Error).message
        }`,
      );
    }
    const url = `http://${this.settings.metricsHost}:${this.#server.port}`;
    this.deps.log.info(`metrics on ${url}/metrics, health on ${url}/health`);
    this.deps.announce(`replicant: metrics on ${url}/metrics, health on ${url}/health`);
    this.#every(1000, () => this.#ping());
    if (this.deps.lagBytes) {
      metrics.lagBytes = () => this.#lagBytes;
      this.#every(5000, () => this.#sampleLag());
      this.#sampleLag();
    }
  }

  #every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    (t as unknown as { unref?: () => void }).unref?.();
    this.#timers.push(t);
  }

  async #ping(): Promise<void> {
    if (this.#pinging) return;
    this.#pinging = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.deps.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer to PING within 2 s")), 2000);
        }),
      ]);
      this.deps.metrics.health.redisOk();
    } catch (err) {
      this.deps.metrics.redisFailed(err);
    } finally {
      clearTimeout(timer);
      this.#pinging = false;
    }
  }

  async #sampleLag(): Promise<void> {
    if (this.#sampling || !this.deps.lagBytes) return;
    this.#sampling = true;
    try {
      const v = await this.deps.lagBytes();
      if (v !== null) this.#lagBytes = v;
    } catch {
      // A sample that failed keeps the last value; the source's own errors are reported by it.
    } finally {
      this.#sampling = false;
    }
  }

  /** The run ended with an error: /health says failed until the process exits. */
  failed(message: string): void {
    this.deps.metrics.health.fatal(message);
  }

  /** Final statistics summary, then everything stops. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#stats.stop();
    await this.#server?.close();
    this.#server = null;
  }
}
