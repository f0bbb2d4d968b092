import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, extname, join } from "node:path";
import net from "node:net";
import process from "node:process";
import { parse as parseYaml } from "yaml";
import { ConfigError, loadFilter, type RedisConnection } from "../config/mod.ts";
import { UsageError } from "../core/errors.ts";
import {
  failed,
  foundOf,
  passed,
  type PrerequisiteCheck,
  statusOf,
} from "../core/prerequisite_check.ts";
import type { LogEvent } from "../observe/log_event.ts";
import { RunConsole } from "../observe/run_console.ts";
import { logFormatOf } from "../observe/run_observer.ts";
import { renderTable, terminalWidth } from "../observe/text_table.ts";
import { openRedisAdmin } from "../sink/redis/redis_connection.ts";
import { connectorOf } from "../source/connectors.ts";
import { checkRedisPrerequisites } from "../sink/redis/redis_prerequisites.ts";
import { type TableSelection, tableSelectionOf } from "../ports/snapshot_source.ts";
import type { CommonOptions } from "./common_options.ts";
import { homeDir, idDir } from "./manifest.ts";
import { loadConnectionFile, redisTargetOf, validateId } from "./replication_setup.ts";

/** Arcion's validation file (`--validate`): which checks to run. */
export interface ValidateConfig {
  endPointType: "SRC" | "DST" | null;
  mode: "SNAPSHOT" | "FULL" | "REALTIME";
  systemTables: boolean;
  cdcLogs: boolean;
  ddlDml: boolean;
}

const VALIDATE_KEYS = [
  "end-point-type",
  "mode",
  "validate-read-access-to-systemTables",
  "validate-read-access-to-cdc-logs",
  "validate-ddl-dml-permission",
];

export function loadValidate(path: string | undefined): ValidateConfig {
  const out: ValidateConfig = {
    endPointType: null,
    mode: "FULL",
    systemTables: true,
    cdcLogs: true,
    ddlDml: true,
  };
  if (!path) return out;
  let doc: Record<string, unknown>;
  try {
    doc = (parseYaml(readFileSync(path, "utf8")) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`--validate ${path}: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  for (const k of Object.keys(doc)) {
    if (!VALIDATE_KEYS.includes(k)) problems.push(`unknown key \`${k}\``);
  }
  const ept = doc["end-point-type"];
  if (ept !== undefined) {
    if (ept === "SRC" || ept === "DST") out.endPointType = ept;
    else problems.push("`end-point-type` must be SRC or DST");
  }
  const mode = doc["mode"];
  if (mode !== undefined) {
    if (mode === "SNAPSHOT" || mode === "FULL" || mode === "REALTIME") out.mode = mode;
    else problems.push("`mode` must be SNAPSHOT, FULL or REALTIME");
  }
  const flag = (key: string, fallback: boolean) => {
    const v = doc[key];
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") problems.push(`\`${key}\` must be true or false`);
    return v === true;
  };
  out.systemTables = flag("validate-read-access-to-systemTables", true);
  out.cdcLogs = flag("validate-read-access-to-cdc-logs", out.mode !== "SNAPSHOT");
  out.ddlDml = flag("validate-ddl-dml-permission", true);
  if (problems.length > 0) throw new UsageError(`--validate ${path}: ${problems.join("; ")}`);
  return out;
}

/** The report of one connection file: Arcion's fields plus every check. */
export interface ConnectionReport {
  connection: string;
  type: string;
  hostPortReachable: string;
  credentialCheck: string;
  readAccessToSystemTables: string;
  readAccessToCdcLogs: string;
  ddlDmlPermission: string;
  missingPermissions: Record<string, string>;
  errorMessages: Record<string, string>;
  urlReachable: string;
  checks: PrerequisiteCheck[];
}

function reachable(host: string, port: number, timeoutMs = 5000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (err: string | null) => {
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once("connect", () => done(null));
    socket.once("error", (e) => done(e.message));
  });
}

const PERMISSION_CHECKS = /privilege|rights|ACL|publication/i;

/**
 * What the source checks select and name: the filter's tables, the id's publication, and
 * the files a run would use (`--filter`, `--extractor`).
 */
export interface TestScope {
  selection: TableSelection;
  id: string;
  group: string;
  filter?: string;
  extractor?: string;
}

async function testOne(
  file: string,
  validate: ValidateConfig,
  out: RunConsole,
  scope: TestScope,
): Promise<ConnectionReport> {
  const conn = await loadConnectionFile(file, undefined, out, "CONN");
  const isSource = conn.type !== "REDIS_STREAM";
  const checks: PrerequisiteCheck[] = [];
  const report: ConnectionReport = {
    connection: file,
    type: conn.type,
    hostPortReachable: "FAILED",
    credentialCheck: "SKIPPED",
    readAccessToSystemTables: "SKIPPED",
    readAccessToCdcLogs: "SKIPPED",
    ddlDmlPermission: "SKIPPED",
    missingPermissions: {},
    errorMessages: {},
    urlReachable: "SKIPPED",
    checks,
  };
  const err = await reachable(conn.host, conn.port);
  checks.push(
    err === null
      ? passed("host/port reachable", `${conn.host}:${conn.port}`)
      : failed("host/port reachable", `${conn.host}:${conn.port}: ${err}`),
  );
  report.hostPortReachable = err === null ? "PASSED" : "FAILED";
  if (err !== null) return finishReport(report);
  if (validate.endPointType && validate.endPointType !== (isSource ? "SRC" : "DST")) {
    checks.push({
      name: "end-point-type",
      status: "WARNING",
      detail: `--validate says ${validate.endPointType} but ${file} is a ${
        isSource ? "source" : "target"
      }; checking it as a ${isSource ? "source" : "target"}`,
    });
  }
  const cdc = validate.cdcLogs && validate.mode !== "SNAPSHOT";
  try {
    if (conn.type === "REDIS_STREAM") {
      await testRedis(conn, checks, report, validate);
    } else {
      const found = await connectorOf(conn, scope).testConnection({
        mode: validate.mode,
        cdc,
        systemTables: validate.systemTables,
        selection: scope.selection,
        extractorFile: scope.extractor,
        filterFile: scope.filter,
        checks,
        login: (user, open) => credentials(checks, report, user, open),
      });
      Object.assign(report, found);
    }
  } catch (e) {
    // A --filter or --extractor file that does not load is the command's error (exit 2).
    if (e instanceof ConfigError) throw e;
    checks.push(failed("error", (e as Error).message));
  }
  return finishReport(report);
}

function finishReport(report: ConnectionReport): ConnectionReport {
  for (const c of report.checks) {
    if (c.status !== "FAILED") continue;
    if (PERMISSION_CHECKS.test(c.name)) report.missingPermissions[c.name] = c.detail;
    else report.errorMessages[c.name] = c.detail;
  }
  return report;
}

async function credentials<T>(
  checks: PrerequisiteCheck[],
  report: ConnectionReport,
  user: string | undefined,
  open: () => Promise<T>,
): Promise<T | null> {
  try {
    const client = await open();
    checks.push(passed("credentials", `logged in as ${user ?? "default"}`));
    report.credentialCheck = "PASSED";
    return client;
  } catch (e) {
    const message = (e as Error).message;
    checks.push(failed("credentials", message, connectHintOf(message)));
    report.credentialCheck = "FAILED";
    return null;
  }
}

async function testRedis(
  conn: RedisConnection,
  checks: PrerequisiteCheck[],
  report: ConnectionReport,
  validate: ValidateConfig,
): Promise<void> {
  const client = await credentials(
    checks,
    report,
    conn.username,
    () => openRedisAdmin(redisTargetOf(conn), "replicant-test-connection"),
  );
  if (!client) return;
  try {
    const redisChecks = await checkRedisPrerequisites(client);
    checks.push(...redisChecks);
    if (validate.ddlDml) {
      report.ddlDmlPermission = statusOf(redisChecks.filter((c) => c.name === "ACL rights"));
    }
  } finally {
    client.disconnect();
  }
}

/**
 * What to change after a failed connect, as the endpoints' messages say it: their closing
 * `(check …)` or `: check …` (a wrong password, user or database name). Undefined otherwise.
 */
export function connectHintOf(message: string): string | undefined {
  return /(?:\(|: )(check [^()]*)\)?$/.exec(message)?.[1];
}

/** Status of a check in json events: `ok`, `failed`, `warning`, `skipped`. */
const EVENT_STATUS = {
  PASSED: "ok",
  FAILED: "failed",
  WARNING: "warning",
  SKIPPED: "skipped",
} as const;

/** `--log-format json`: one check of one connection file. */
export function checkEvent(
  check: PrerequisiteCheck,
  report: { connection: string; type: string },
  path: string,
): LogEvent {
  return {
    level: check.status === "FAILED" ? "error" : check.status === "WARNING" ? "warn" : "info",
    event: "check",
    fields: {
      connection: report.connection,
      type: report.type,
      name: check.name,
      status: EVENT_STATUS[check.status],
      detail: foundOf(check),
      hint: check.hint ?? null,
      report: path,
    },
  };
}

/**
 * `replicant test-connection CONN... [--validate FILE]`: per connection file, reachability,
 * credentials and (sources) CDC prerequisites or (Redis) version, ACL rights, memory policy
 * and persistence. Prints a table, writes one JSON report per file under <home>/data/<id>/,
 * exits 0 only when no check failed (a warning does not stop a run, but the verdict counts
 * it and points at it). With `--log-format json`
 * one `check` event per check instead of the table, then `check_total`.
 */
export async function testConnection(conns: string[], opts: CommonOptions): Promise<number> {
  const format = logFormatOf(opts);
  const home = homeDir(opts.home);
  const id = validateId(opts.id ?? "default");
  const out = new RunConsole(format, id);
  const validate = loadValidate(opts.validate);
  const scope: TestScope = {
    selection: tableSelectionOf(opts.filter ? loadFilter(opts.filter) : null),
    id,
    group: opts.replicationGroup ?? "default",
    filter: opts.filter,
    extractor: opts.extractor,
  };
  const dir = idDir(home, id);
  mkdirSync(dir, { recursive: true });
  const rows: string[][] = [];
  const count = { PASSED: 0, FAILED: 0, WARNING: 0, SKIPPED: 0 };
  const reports: string[] = [];
  const used = new Set<string>();
  for (const file of conns) {
    const report = await testOne(file, validate, out, scope);
    let name = `test_connection_${basename(file, extname(file))}`;
    for (let i = 2; used.has(name); i++) {
      name = `test_connection_${basename(file, extname(file))}_${i}`;
    }
    used.add(name);
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
    reports.push(path);
    for (const c of report.checks) {
      count[c.status]++;
      rows.push([file, c.name, c.status, c.detail]);
      out.result(checkEvent(c, report, path));
    }
    if (format === "text") out.print(`report: ${path}`);
  }
  const failures = count.FAILED;
  if (format === "text") {
    // The detail column is wrapped to fit a terminal.
    const width = terminalWidth(process.stdout, process.env.COLUMNS);
    out.print(renderTable(["connection", "check", "status", "detail"], rows, { width }));
  }
  out.result(
    {
      level: failures === 0 ? "info" : "error",
      event: "check_total",
      fields: {
        connections: conns.length,
        checks: rows.length,
        ok: count.PASSED,
        warning: count.WARNING,
        failed: failures,
        skipped: count.SKIPPED,
        reports,
      },
    },
    verdict(count),
  );
  return failures === 0 ? 0 : 1;
}

/** The closing line: what passed, what to read (warnings) and what to fix (failures). */
export function verdict(count: Record<PrerequisiteCheck["status"], number>): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const passed = count.PASSED;
  const warned = count.WARNING;
  if (count.FAILED > 0) {
    return `${plural(count.FAILED, "check")} FAILED, ${plural(warned, "warning")}, ${passed} ` +
      `passed: fix the FAILED rows; replication will not work until they pass.`;
  }
  if (warned > 0) {
    return `No check failed: ${passed} passed, ${plural(warned, "warning")}. Read the ` +
      `WARNING row${warned === 1 ? "" : "s"}: replication works, with the risk ${
        warned === 1 ? "it names" : "they name"
      }.`;
  }
  return `All ${plural(passed, "check")} passed.`;
}
