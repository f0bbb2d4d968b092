/**
 * MariaDB sources with what real schemas and Arcion's own files bring, through the binary:
 * filter column lists as Arcion's samples write them, ENUM/SET labels beyond the BMP,
 * declared types, Arcion's heartbeat table, server ids, grants, foreign-key cascades.
 */
import assert from "node:assert/strict";
import { deleteKeys, readStream } from "../helpers/clients.ts";
import { runReplicant, startReplicant } from "../helpers/replicant.ts";
import { waitFor } from "../helpers/services.ts";
import { afters, env, filterFile, mysqlFixture, whileRunning } from "../helpers/mysql_fixture.ts";

Deno.test("filter columns: Arcion's upper-case comma form selects them; an unknown one is exit 2", async () => {
  const f = await mysqlFixture("myfid_cols");
  try {
    await f.db.query(
      "CREATE TABLE customers (id INT PRIMARY KEY, first_name VARCHAR(20), last_name VARCHAR(20), " +
        "email VARCHAR(40))",
    );
    await f.db.query("INSERT INTO customers VALUES (1, 'Ada', 'Lovelace', 'ada@example.org')");
    const arcionForm = filterFile(
      f.home,
      `allow:\n  catalog: "${f.database}"\n  types: [TABLE]\n  allow:\n    CUSTOMERS:\n` +
        `      allow: ["FIRST_NAME, LAST_NAME"]\n`,
    );
    const ok = await runReplicant(f.args("snapshot", ["--filter", arcionForm]));
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await afters(f.redis, `${f.database}_customers`), [
      { id: 1, first_name: "Ada", last_name: "Lovelace" },
    ]);

    const unknown = filterFile(
      f.home,
      `allow:\n  - catalog: "${f.database}"\n    allow:\n      customers:\n` +
        `        allow: [first_name, no_such_column]\n`,
    );
    const bad = await runReplicant(f.args("snapshot", ["--filter", unknown, "--overwrite"]));
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      new RegExp(
        `filter\\.yaml: allow\\[0\\]\\.allow\\.customers\\.allow: column "no_such_column" is ` +
          `not a column of table ${f.database}\\.customers \\(id, first_name, last_name, email\\)`,
      ),
    );
    // Nothing was written: the stream of the first run is still there as it was.
    assert.equal(await f.redis.xlen(`${f.database}_customers`), 1);
  } finally {
    await f.cleanup();
  }
});

Deno.test("heartbeat: Arcion's table shape is written in place; Replicant's own table is never replicated", async () => {
  const f = await mysqlFixture("myfid_hb");
  try {
    await f.db.query("CREATE TABLE t (id INT PRIMARY KEY)");
    // Arcion's documented heartbeat table, in the replicated database.
    await f.db.query(
      "CREATE TABLE replicate_io_cdc_heartbeat(timestamp BIGINT NOT NULL, PRIMARY KEY(timestamp))",
    );
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const heartbeat = (table: string) =>
      f.home.write(
        `hb_${table}.yaml`,
        `realtime:\n  heartbeat:\n    enable: true\n    catalog: ${f.database}\n` +
          `    table-name: ${table}\n    column-name: timestamp\n    interval-ms: 200\n`,
      );
    const beats = async (table: string) => {
      const [rows] = await f.db.query(`SELECT timestamp AS t FROM ${table}`);
      return (rows as { t: string }[]).map((r) => Number(r.t));
    };
    for (const table of ["replicate_io_cdc_heartbeat", "replicant_made_heartbeat"]) {
      const run = startReplicant(
        f.args("realtime", ["--extractor", heartbeat(table), "--filter", filter, "--overwrite"]),
      );
      try {
        // Two beats seen: one row, moving forward.
        let first = 0;
        await waitFor(async () => {
          const rows = await beats(table).catch(() => []);
          if (rows.length === 1 && first === 0) first = rows[0];
          return rows.length === 1 && rows[0] > first && first > 0;
        }, { what: `beats in ${table}`, timeoutMs: 20_000, intervalMs: 100 });
      } finally {
        run.kill("SIGTERM");
      }
      const res = await run.done;
      assert.equal(res.code, 0, res.stderr);
      assert.doesNotMatch(res.stderr, /heartbeat table .* failed|has no column/);
      assert.deepEqual(
        await f.redis.keys(`${f.database}_${table}*`),
        [],
        "heartbeat rows are never replicated",
      );
    }
  } finally {
    await f.cleanup();
  }
});

Deno.test("heartbeat: a table the writes fail on is reported once, clearly", async () => {
  const f = await mysqlFixture("myfid_hb_bad");
  try {
    await f.db.query("CREATE TABLE t (id INT PRIMARY KEY)");
    await f.db.query("CREATE TABLE hb (id INT PRIMARY KEY, other BIGINT)");
    const extractor = f.home.write(
      "hb.yaml",
      `realtime:\n  heartbeat:\n    enable: true\n    catalog: ${f.database}\n` +
        `    table-name: hb\n    column-name: timestamp\n    interval-ms: 100\n`,
    );
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const run = startReplicant(f.args("realtime", ["--extractor", extractor, "--filter", filter]));
    await new Promise((r) => setTimeout(r, 2500));
    run.kill("SIGTERM");
    const res = await run.done;
    assert.equal(res.code, 0, res.stderr);
    const reports = res.stderr.split("\n").filter((l) => l.includes("heartbeat table"));
    assert.equal(reports.length, 1, res.stderr);
    assert.match(
      reports[0],
      new RegExp(
        `heartbeat table \`${f.database}\`\\.\`hb\`: table \`${f.database}\`\\.\`hb\` has no ` +
          "column timestamp \\(its columns: id, other\\); set realtime\\.heartbeat\\.column-name",
      ),
    );
  } finally {
    await f.cleanup();
  }
});

Deno.test("ENUM/SET labels beyond the BMP (emoji), commas, quotes: snapshot, realtime, schema dump and DDL agree", async () => {
  const f = await mysqlFixture("myfid_enum");
  const labels = ["plain", "😀 grin", "a,b", "it's", "ü"];
  const sqlList = (l: string[]) => l.map((x) => `'${x.replaceAll("'", "''")}'`).join(",");
  const dumpStream = `replicate_io_replication_schema_default_${f.id}`;
  const ddlStream = `replicate_io_schema_change_log_default_${f.id}`;
  try {
    await f.db.query(
      `CREATE TABLE t (id INT PRIMARY KEY, e ENUM(${sqlList(labels)}) DEFAULT '😀 grin', ` +
        `s SET('x','🎉','y''s')) CHARSET utf8mb4`,
    );
    await f.db.query("INSERT INTO t VALUES (1, '😀 grin', '🎉,y''s'), (2, 'a,b', 'x')");
    const extractor = f.home.write(
      "extractor.yaml",
      "realtime:\n  ddl-replication:\n    enable: true\n",
    );
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const cdc = `${f.database}_t_cdc_logs`;
    const res = await whileRunning(
      f.args("full", ["--extractor", extractor, "--filter", filter]),
      async (alive) => {
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(`${f.database}_t`)) === 2;
        }, { what: "snapshot", timeoutMs: 20_000 });
        await f.db.query("INSERT INTO t VALUES (3, '😀 grin', '🎉'), (4, 'it''s', 'x,🎉,y''s')");
        await f.db.query("ALTER TABLE t ADD COLUMN u ENUM('🦄','b') DEFAULT '🦄'");
        await f.db.query("INSERT INTO t (id, e, s, u) VALUES (5, 'ü', '', '🦄')");
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(cdc)) === 3;
        }, { what: "realtime rows", timeoutMs: 20_000 });
      },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await afters(f.redis, `${f.database}_t`), [
      { id: 1, e: "😀 grin", s: "🎉,y's" },
      { id: 2, e: "a,b", s: "x" },
    ]);
    assert.deepEqual(await afters(f.redis, cdc), [
      { id: 3, e: "😀 grin", s: "🎉" },
      { id: 4, e: "it's", s: "x,🎉,y's" },
      { id: 5, e: "ü", s: "", u: "🦄" },
    ]);
    // Column definitions: the schema dump and the DDL stream name the real labels.
    const dump = await f.redis.xrange(dumpStream, "-", "+");
    const columns = dump.map(([, fields]) =>
      JSON.parse(fields[fields.indexOf("columns") + 1]) as { name: string; type: string }[]
    );
    const typeOf = (cols: { name: string; type: string; default?: string }[], name: string) =>
      cols.find((c) => c.name === name);
    assert.equal(typeOf(columns[0], "e")?.type, "enum('plain','😀 grin','a,b','it''s','ü')");
    assert.equal(typeOf(columns[0], "e")?.default, "'😀 grin'");
    assert.equal(typeOf(columns[0], "s")?.type, "set('x','🎉','y''s')");
    assert.equal(typeOf(columns.at(-1)!, "u")?.type, "enum('🦄','b')");
    const ddl = await f.redis.xrange(ddlStream, "-", "+");
    const after = JSON.parse(ddl.at(-1)![1][ddl.at(-1)![1].indexOf("after") + 1]) as {
      columns: { name: string; type: string }[];
    };
    assert.equal(typeOf(after.columns, "u")?.type, "enum('🦄','b')");
  } finally {
    await f.cleanup();
  }
});

Deno.test("a resume before an ALTER decodes older rows with the older schema, across DDL of other databases", async () => {
  // The checkpoint is before the ALTER, so the rows in between have the old width; a DDL
  // Replicant cannot attribute to a table (CREATE/DROP DATABASE, as parallel work on the
  // same server issues) must not make it re-read the table's current, wider schema.
  const f = await mysqlFixture("myfid_hist");
  const other = `${f.database}_x`;
  const extractor = f.home.write(
    "extractor.yaml",
    "realtime:\n  ddl-replication:\n    enable: true\n",
  );
  const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
  const cdc = `${f.database}_t_cdc_logs`;
  try {
    await f.db.query("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))");
    await f.db.query("INSERT INTO t VALUES (1, 'a')");
    const first = await whileRunning(
      f.args("full", ["--extractor", extractor, "--filter", filter]),
      async (alive) => {
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(`${f.database}_t`)) === 1;
        }, { what: "snapshot", timeoutMs: 20_000 });
        await f.db.query("INSERT INTO t VALUES (2, 'b')");
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(cdc)) === 1;
        }, { what: "first change", timeoutMs: 20_000 });
      },
    );
    assert.equal(first.code, 0, first.stderr);
    await f.db.query("INSERT INTO t VALUES (3, 'c')");
    await f.db.query(`CREATE DATABASE ${other}`);
    await f.db.query(`DROP DATABASE ${other}`);
    await f.db.query("INSERT INTO t VALUES (4, 'd')");
    await f.db.query("ALTER TABLE t ADD COLUMN w INT DEFAULT 7");
    await f.db.query("INSERT INTO t VALUES (5, 'e', 8)");
    const resumed = await whileRunning(
      f.args("realtime", ["--extractor", extractor, "--filter", filter, "--resume"]),
      async (alive) => {
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(cdc)) === 4;
        }, { what: "changes after the resume", timeoutMs: 20_000 });
      },
    );
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(await afters(f.redis, cdc), [
      { id: 2, v: "b" },
      { id: 3, v: "c" },
      { id: 4, v: "d" },
      { id: 5, v: "e", w: 8 },
    ]);
  } finally {
    await f.db.query(`DROP DATABASE IF EXISTS ${other}`);
    await f.cleanup();
  }
});

/** Whether a payload value is of its declared Kafka Connect type (null where optional). */
function fitsDeclared(type: string, optional: boolean, v: unknown): boolean {
  if (v === null) return optional;
  switch (type) {
    case "int16":
    case "int32":
      return Number.isInteger(v);
    case "int64":
      // Beyond ±(2^53−1): the exact digits as a string (documented).
      return Number.isInteger(v) ||
        (typeof v === "string" && /^-?\d{16,}$/.test(v) && !Number.isSafeInteger(Number(v)));
    case "float":
    case "double":
      return typeof v === "number";
    case "boolean":
      return typeof v === "boolean";
    case "bytes":
      return typeof v === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(v);
    case "string":
      return typeof v === "string";
    default:
      return false;
  }
}

Deno.test("declared types: every MySQL type's value is of the type its entry's schema declares", async () => {
  const f = await mysqlFixture("myfid_types");
  const columns = [
    "ti TINYINT",
    "tu TINYINT UNSIGNED",
    "si SMALLINT",
    "su SMALLINT UNSIGNED",
    "mi MEDIUMINT",
    "mu MEDIUMINT UNSIGNED",
    "i INT",
    "iu INT UNSIGNED",
    "bi BIGINT",
    "bu BIGINT UNSIGNED",
    "de DECIMAL(65,30)",
    "fl FLOAT",
    "db DOUBLE",
    "b1 BIT(1)",
    "b64 BIT(64)",
    "yr YEAR",
    "dt DATE",
    "tm TIME(3)",
    "dtm DATETIME(6)",
    "ts TIMESTAMP(3) NULL",
    "ch CHAR(3)",
    "vc VARCHAR(20)",
    "tx TEXT",
    "bn BINARY(2)",
    "vb VARBINARY(5)",
    "bl BLOB",
    "en ENUM('a','😀')",
    "st SET('x','y')",
    "js JSON",
    "gm POINT",
    "u6 INET6",
    "uu UUID",
  ];
  const row = `(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615, '-12345678901234567890.123456789', 1.5,
    -1.7976931348623157e308, b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
    2024, '2024-02-29', '-838:59:59.000', '2024-01-31 13:45:00.123456', '2024-01-31 13:45:00.123',
    'abc', 'vc', 'text', 'ab', 'vb', 'blob', '😀', 'x,y', '{"a": [1, {"b": null}]}',
    ST_GeomFromText('POINT(1 2)'), '::1', '123e4567-e89b-12d3-a456-426655440000')`;
  try {
    await f.db.query(
      `CREATE TABLE t (id INT PRIMARY KEY, ${columns.join(", ")}) CHARSET utf8mb4`,
    );
    await f.db.query(`INSERT INTO t VALUES ${row}`);
    await f.db.query(`INSERT INTO t (id) VALUES (2)`);
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const cdc = `${f.database}_t_cdc_logs`;
    const res = await whileRunning(f.args("full", ["--filter", filter]), async (alive) => {
      await waitFor(async () => {
        await alive();
        return (await f.redis.xlen(`${f.database}_t`)) === 2;
      }, { what: "snapshot", timeoutMs: 20_000 });
      await f.db.query(`INSERT INTO t VALUES ${row.replace("(1,", "(3,")}`);
      await f.db.query(`INSERT INTO t (id) VALUES (4)`);
      await waitFor(async () => {
        await alive();
        return (await f.redis.xlen(cdc)) === 2;
      }, { what: "realtime rows", timeoutMs: 20_000 });
    });
    assert.equal(res.code, 0, res.stderr);
    const entries = [
      ...await readStream(f.redis, `${f.database}_t`),
      ...await readStream(f.redis, cdc),
    ];
    assert.equal(entries.length, 4);
    const misfits: string[] = [];
    for (const [, fields] of entries) {
      const value = JSON.parse(fields[1]);
      const after = value.payload.after as Record<string, unknown>;
      const declared = value.schema.fields.find((x: { field: string }) => x.field === "after")
        .fields as { field: string; type: string; optional: boolean }[];
      assert.equal(declared.length, columns.length + 1);
      for (const d of declared) {
        if (!fitsDeclared(d.type, d.optional, after[d.field])) {
          misfits.push(`${after.id}.${d.field}: ${d.type} but ${JSON.stringify(after[d.field])}`);
        }
      }
    }
    assert.deepEqual(misfits, []);
    // JSON is the JSON text, the same in the snapshot and realtime.
    const js = entries.map(([, f]) => JSON.parse(f[1]).payload.after.js);
    assert.deepEqual(js, ['{"a": [1, {"b": null}]}', null, '{"a": [1, {"b": null}]}', null]);
  } finally {
    await f.cleanup();
  }
});

Deno.test("grants: Arcion's documented MariaDB grants pass test-connection and run full; each missing one is named by both", async () => {
  const f = await mysqlFixture("myfid_grants");
  const user = `arc_${f.id.slice(-8).replaceAll("-", "_")}`;
  const tc = (conn: string, extra: string[] = []) =>
    runReplicant(["test-connection", conn, "--home", f.home.dir, "--id", f.id, ...extra]);
  try {
    await f.db.query("CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(10))");
    await f.db.query("CREATE TABLE nation (id INT PRIMARY KEY, n VARCHAR(10))");
    await f.db.query("INSERT INTO orders VALUES (1, 'a')");
    await f.db.query("INSERT INTO nation VALUES (1, 'x')");
    // Exactly what Arcion's MariaDB page grants: SELECT per table, the replication privileges.
    await f.db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
    await f.db.query(`GRANT SELECT ON \`${f.database}\`.\`orders\` TO '${user}'@'%'`);
    await f.db.query(`GRANT SELECT ON \`${f.database}\`.\`nation\` TO '${user}'@'%'`);
    await f.db.query(`GRANT REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
    await f.db.query(`GRANT REPLICATION SLAVE ON *.* TO '${user}'@'%'`);
    const conn = (ids: string) =>
      f.home.write(
        `arcion_${ids.replace(/\D/g, "")}.yaml`,
        `type: MARIADB\nhost: ${env.host}\nport: ${env.port}\nusername: ${user}\n` +
          `password: pw\nslave-server-ids: [${ids}]\n`,
      );
    const ok = conn(String(3000 + Math.floor(Math.random() * 60_000)));
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const passed = await tc(ok, ["--filter", filter]);
    assert.equal(passed.code, 0, passed.stdout + passed.stderr);
    assert.match(passed.stdout, /table privileges\s+PASSED\s+SELECT on the 2 selected table/);
    assert.match(passed.stdout, /replication privileges\s+PASSED/);
    // Without a filter, as a run without one: every table the user can see.
    const unfiltered = await tc(ok);
    assert.equal(unfiltered.code, 0, unfiltered.stdout + unfiltered.stderr);

    // full runs with the same user.
    const args = (c: string, extra: string[] = []) => [
      "full",
      c,
      f.home.redisConn,
      "--filter",
      filter,
      "--id",
      f.id,
      "--home",
      f.home.dir,
      ...extra,
    ];
    const run = await whileRunning(args(ok), async (alive) => {
      await waitFor(async () => {
        await alive();
        return (await f.redis.xlen(`${f.database}_nation`)) === 1;
      }, { what: "snapshot", timeoutMs: 20_000 });
      await f.db.query("INSERT INTO orders VALUES (2, 'b')");
      await waitFor(async () => {
        await alive();
        return (await f.redis.xlen(`${f.database}_orders_cdc_logs`)) === 1;
      }, { what: "realtime", timeoutMs: 20_000 });
    });
    assert.equal(run.code, 0, run.stderr);

    // The server's own id in slave-server-ids: test-connection fails, and full stops before
    // writing anything (exit 2), instead of after its snapshot.
    const own = conn("1");
    const clash = await tc(own, ["--filter", filter]);
    assert.equal(clash.code, 1, clash.stdout);
    assert.match(
      clash.stdout,
      /slave-server-ids\s+FAILED\s+slave-server-ids \[1\] has no usable id/,
    );
    await deleteKeys(f.redis, `${f.database}_*`);
    const refused = await runReplicant(args(own, ["--overwrite"]));
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /arcion_1\.yaml: slave-server-ids: slave-server-ids \[1\] has no usable id/,
    );
    assert.deepEqual(await f.redis.keys(`${f.database}_*`), [], "nothing written");

    // A table the user may see but not read: both test-connection and the run say so.
    await f.db.query(`REVOKE SELECT ON \`${f.database}\`.\`nation\` FROM '${user}'@'%'`);
    await f.db.query(`GRANT INSERT ON \`${f.database}\`.\`nation\` TO '${user}'@'%'`);
    const noSelect = await tc(ok, ["--filter", filter]);
    assert.equal(noSelect.code, 1, noSelect.stdout);
    assert.match(
      noSelect.stdout,
      new RegExp(
        `table privileges\\s+FAILED\\s+user "${user}" may not read 1 of the 2 selected table\\(s\\): ` +
          `GRANT SELECT ON \`${f.database}\`\\.\`nation\``,
      ),
    );
    const snap = await runReplicant([
      "snapshot",
      ok,
      f.home.redisConn,
      "--filter",
      filter,
      "--id",
      `${f.id}-snap`,
      "--home",
      f.home.dir,
    ]);
    assert.notEqual(snap.code, 0, snap.stdout + snap.stderr);
    assert.match(snap.stdout + snap.stderr, /nation/);
    await deleteKeys(f.redis, `replicate_io_*_default_${f.id}-snap`);

    // The snapshot alone needs no replication privilege on MariaDB.
    await f.db.query(`REVOKE REPLICATION SLAVE, BINLOG MONITOR ON *.* FROM '${user}'@'%'`);
    const validate = f.home.write("validate.yaml", "mode: SNAPSHOT\n");
    const snapOnly = await tc(ok, [
      "--filter",
      f.home.write("orders.yaml", `allow:\n  - catalog: ${f.database}\n    allow: [orders]\n`),
      "--validate",
      validate,
    ]);
    assert.equal(snapOnly.code, 0, snapOnly.stdout + snapOnly.stderr);
    const realtime = await tc(ok, ["--filter", filter]);
    assert.match(
      realtime.stdout,
      /replication privileges\s+FAILED\s+user "\S+" lacks REPLICATION SLAVE, BINLOG MONITOR/,
    );
  } finally {
    await f.db.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await f.cleanup();
  }
});

Deno.test("documented differences: FK cascades warned (never in the binlog); keyless key and source fields as Arcion's on request", async () => {
  const f = await mysqlFixture("myfid_diff");
  try {
    await f.db.query("CREATE TABLE parent (id INT PRIMARY KEY)");
    await f.db.query(
      "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, " +
        "CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE)",
    );
    await f.db.query("CREATE TABLE keyless (a INT, b VARCHAR(5))");
    await f.db.query("INSERT INTO parent VALUES (1), (2)");
    await f.db.query("INSERT INTO child VALUES (10, 1), (20, 2)");
    await f.db.query("INSERT INTO keyless VALUES (1, 'x')");
    const filter = filterFile(f.home, `allow:\n  - catalog: ${f.database}\n`);
    const applier = f.home.write(
      "applier.yaml",
      "keyless-table-key: default\nsource-info: arcion\n",
    );
    const cascade = new RegExp(
      `foreign keys that change child rows by cascade: ${f.database}\\.child \\(child_parent: ` +
        `ON DELETE CASCADE from ${f.database}\\.parent\\)`,
    );
    const tc = await runReplicant([
      "test-connection",
      f.sourceConn,
      "--filter",
      filter,
      "--home",
      f.home.dir,
    ]);
    assert.equal(tc.code, 0, tc.stdout);
    assert.match(tc.stdout.replace(/\s+/g, " "), /foreign-key cascades WARNING/);
    const res = await whileRunning(
      f.args("full", ["--filter", filter, "--applier", applier]),
      async (alive) => {
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(`${f.database}_keyless`)) === 1;
        }, { what: "snapshot", timeoutMs: 20_000 });
        await f.db.query("DELETE FROM parent WHERE id = 1");
        await f.db.query("DELETE FROM keyless");
        await waitFor(async () => {
          await alive();
          return (await f.redis.xlen(`${f.database}_keyless_cdc_logs`)) === 2;
        }, { what: "realtime", timeoutMs: 20_000 });
      },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, cascade);
    // The cascade deleted child 10 in the database; the binlog never said so.
    const [left] = await f.db.query("SELECT id FROM child");
    assert.deepEqual((left as { id: number }[]).map((r) => r.id), [20]);
    assert.equal(await f.redis.xlen(`${f.database}_parent_cdc_logs`), 2, "delete + tombstone");
    assert.equal(await f.redis.exists(`${f.database}_child_cdc_logs`), 0);
    // A keyless table's key is Arcion's literal `default`; source names the server as Arcion.
    const [[, [key, value]], [, tomb]] = await readStream(
      f.redis,
      `${f.database}_keyless_cdc_logs`,
    );
    assert.equal(key, "default");
    assert.deepEqual(tomb, ["default", "default"]);
    const source = JSON.parse(value).payload.source;
    const [v] = await f.db.query("SELECT VERSION() AS v");
    assert.equal(source.connector, "MARIADB");
    assert.equal(source.version, (v as { v: string }[])[0].v);
  } finally {
    await f.cleanup();
  }
});
