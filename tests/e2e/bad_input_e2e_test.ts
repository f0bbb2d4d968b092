/**
 * Bad input through the binary: each case ends in one clear message naming the file and
 * key, the documented exit code, and no stack trace.
 */
import assert from "node:assert/strict";
import mysql from "mysql2/promise";
import { pgClient, redisClient } from "../helpers/clients.ts";
import { runReplicant, scratchHome } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";

interface Case {
  name: string;
  /** Files to write, by name; "SRC"/"DST" replace the default connection files. */
  files?: Record<string, string>;
  args: (h: ReturnType<typeof scratchHome>, f: Record<string, string>) => string[];
  code: number;
  /** Each must appear in stderr. */
  says: (string | RegExp)[];
}

const env = serviceEnv();
const pgConn = (extra = "") =>
  `type: POSTGRESQL\nhost: ${env.pg.host}\nport: ${env.pg.port}\ndatabase: ${env.pg.database}\nusername: ${env.pg.user}\n${extra}`;
const redisConn = (extra = "") =>
  `type: REDIS_STREAM\nhost: ${env.redis.host}\nport: ${env.redis.port}\n${extra}`;
const snap = (h: ReturnType<typeof scratchHome>, src: string, dst: string, ...more: string[]) => [
  "snapshot",
  src,
  dst,
  "--home",
  h.dir,
  "--id",
  "bad-input",
  "--overwrite",
  ...more,
];

const cases: Case[] = [
  {
    name: "missing required key",
    files: { src: `type: POSTGRESQL\nhost: 127.0.0.1\nusername: postgres\n` },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 2,
    says: [/src\.yaml: database: /],
  },
  {
    name: "wrong type of value",
    files: { src: pgConn("port: fifty\n").replace(/port: \d+\n/, "") },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 2,
    says: [/src\.yaml: port: /],
  },
  {
    name: "unknown key with a suggestion",
    files: { dst: redisConn("max-conections: 4\n") },
    args: (h, f) => snap(h, h.pgConn, f.dst),
    code: 2,
    says: [/dst\.yaml: max-conections: .*max-connections/],
  },
  {
    name: "typo in an applier key",
    files: { app: "snapshot:\n  batch-size-row: 100\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--applier", f.app),
    code: 2,
    says: [/app\.yaml: snapshot\.batch-size-row: .*batch-size-rows/],
  },
  {
    name: "bad YAML",
    files: { src: "type: POSTGRESQL\nhost: [unclosed\n" },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 2,
    says: [/src\.yaml/],
  },
  {
    name: "missing file",
    args: (h) => snap(h, h.dir + "/nope.yaml", h.redisConn),
    code: 2,
    says: [/nope\.yaml/],
  },
  {
    name: "a folder instead of a file",
    args: (h) => snap(h, h.dir, h.redisConn),
    code: 2,
    says: [h_dirPattern()],
  },
  {
    name: "missing filter file names --filter",
    args: (h) => snap(h, h.pgConn, h.redisConn, "--filter", h.dir + "/nope.yaml"),
    code: 2,
    says: [/replicant: --filter \S+\/nope\.yaml: cannot read the file: no such file/],
  },
  {
    name: "missing extractor and applier files name their options",
    args: (h) =>
      snap(h, h.pgConn, h.redisConn, "--extractor", h.dir + "/x.yaml", "--applier", "a.yaml"),
    code: 2,
    says: [/--extractor \S+\/x\.yaml: cannot read the file/, /--applier a\.yaml: cannot read/],
  },
  {
    name: "missing connection files name SRC_CONN and DST_CONN",
    args: (h) => snap(h, h.dir + "/src.yaml", h.dir + "/dst.yaml"),
    code: 2,
    says: [/SRC_CONN \S+\/src\.yaml: cannot read/, /DST_CONN \S+\/dst\.yaml: cannot read/],
  },
  {
    name: "missing --source file",
    args: (h) => ["snapshot", h.redisConn, "--source", "gone.yaml", "--home", h.dir],
    code: 2,
    says: [/--source gone\.yaml: cannot read the file/],
  },
  {
    name: "key problem names the option too",
    files: { filt: "allow:\n  - catalog: replicant\n    typos: [TABLE]\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--filter", f.filt),
    code: 2,
    says: [/--filter \S+filt\.yaml: allow\[0\]\.typos: /],
  },
  {
    name: "fetch-schemas: missing --filter file",
    args: (h) => ["fetch-schemas", h.pgConn, "--filter", "nope.yaml", "--home", h.dir],
    code: 2,
    says: [/--filter nope\.yaml: cannot read the file/],
  },
  {
    name: "fetch-schemas: --output-file that cannot be written",
    args: (h) => ["fetch-schemas", h.pgConn, "--output-file", h.dir + "/no/dir/s.yaml"],
    code: 2,
    says: [/--output-file \S+\/no\/dir\/s\.yaml: cannot write the file: no such file/],
  },
  {
    name: "test-connection: missing file names CONN",
    args: (h) => ["test-connection", h.dir + "/c.yaml", "--home", h.dir],
    code: 2,
    says: [/CONN \S+\/c\.yaml: cannot read the file/],
  },
  {
    name: "test-connection: missing --validate file",
    args: (h) => ["test-connection", h.redisConn, "--validate", "v.yaml", "--home", h.dir],
    code: 2,
    says: [/--validate v\.yaml: /],
  },
  {
    name: "wrong connection type",
    files: { src: pgConn().replace("POSTGRESQL", "ORACLE") },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 2,
    says: [/src\.yaml: type: .*POSTGRESQL/],
  },
  {
    name: "target given as source",
    args: (h) => snap(h, h.redisConn, h.pgConn),
    code: 2,
    says: [/redis_stream\.yaml: type: /, /postgresql\.yaml: type: /],
  },
  {
    name: "negative threads",
    files: { ext: "snapshot:\n  threads: -2\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--extractor", f.ext),
    code: 2,
    says: [/ext\.yaml: snapshot\.threads: /],
  },
  {
    name: "zero threads",
    files: { ext: "snapshot:\n  threads: 0\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--extractor", f.ext),
    code: 2,
    says: [/ext\.yaml: snapshot\.threads: /],
  },
  {
    name: "bad enum value",
    files: { app: "message-format: xml\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--applier", f.app),
    code: 2,
    says: [/app\.yaml: message-format: .*compact/],
  },
  {
    name: "unset environment variable",
    files: { dst: redisConn("password: ${REPLICANT_TEST_UNSET_VARIABLE}\n") },
    args: (h, f) => snap(h, h.pgConn, f.dst),
    code: 2,
    says: [/dst\.yaml: password: .*REPLICANT_TEST_UNSET_VARIABLE/],
  },
  {
    name: "problems of several files at once",
    files: { ext: "snapshot:\n  threads: 0\n", app: "tombstones: maybe\n" },
    args: (h, f) => snap(h, h.pgConn, h.redisConn, "--extractor", f.ext, "--applier", f.app),
    code: 2,
    says: [/ext\.yaml: snapshot\.threads/, /app\.yaml: tombstones/],
  },
  {
    name: "unknown option",
    args: (h) => snap(h, h.pgConn, h.redisConn, "--threads", "4"),
    code: 2,
    says: [/--threads/, /\(see replicant snapshot --help\)$/m],
  },
  {
    name: "bad replication id",
    args: (h) => ["snapshot", h.pgConn, h.redisConn, "--home", h.dir, "--id", "a b/c"],
    code: 2,
    says: [/--id "a b\/c"/],
  },
  {
    name: "unreachable source host",
    files: { src: pgConn().replace(/port: \d+/, "port: 1") },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 1,
    says: [/PostgreSQL at 127\.0\.0\.1:1/, /src\.yaml/],
  },
  {
    name: "unreachable Redis",
    files: { dst: redisConn().replace(/port: \d+/, "port: 1") },
    args: (h, f) => snap(h, h.pgConn, f.dst),
    code: 1,
    says: [/Redis at 127\.0\.0\.1:1/, /dst\.yaml/],
  },
  {
    name: "wrong Redis password",
    files: { dst: redisConn("username: nobody\npassword: wrong\n") },
    args: (h, f) => snap(h, h.pgConn, f.dst),
    code: 1,
    says: [/Redis at/, /dst\.yaml/, /authentication failed/],
  },
  {
    name: "unknown database",
    files: { src: pgConn().replace(/database: .*/, "database: no_such_db") },
    args: (h, f) => snap(h, f.src, h.redisConn),
    code: 1,
    says: [/no_such_db/, /database/],
  },
];

function h_dirPattern(): RegExp {
  return /replicant-test-/;
}

for (const c of cases) {
  Deno.test(`bad input: ${c.name}`, async () => {
    const home = scratchHome();
    const files: Record<string, string> = {};
    for (const [name, text] of Object.entries(c.files ?? {})) {
      files[name] = home.write(`${name}.yaml`, text);
    }
    const res = await runReplicant(c.args(home, files));
    assert.equal(res.code, c.code, `exit code; stderr: ${res.stderr}`);
    for (const s of c.says) assert.match(res.stderr, s instanceof RegExp ? s : new RegExp(s));
    assert.doesNotMatch(res.stderr, /\n\s+at .*:\d+/, "no stack trace without --verbose");
    assert.doesNotMatch(res.stderr, /internal error/);
  });
}

Deno.test("--verbose adds the stack trace of a failure", async () => {
  const home = scratchHome();
  const src = home.write("src.yaml", pgConn().replace(/port: \d+/, "port: 1"));
  const res = await runReplicant([...snap(home, src, home.redisConn), "--verbose"]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /\n\s+at /);
});

Deno.test("--help answers and --version names version and compiler", async () => {
  const help = await runReplicant(["snapshot", "--help"]);
  assert.equal(help.code, 0);
  for (const opt of ["--extractor", "--applier", "--filter", "--replace-existing", "--resume"]) {
    assert.match(help.stdout, new RegExp(opt));
  }
  const version = await runReplicant(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^replicant \d+\.\d+\.\d+ \(commit \w+/);
});

/**
 * A filter that selects nothing: exit 2 before anything is created (no state in Redis, no
 * slot), naming the filter file and --filter and listing what the source has.
 */
Deno.test("bad input: a filter that selects no table (PostgreSQL)", async () => {
  const tag = `empty_sel_${Date.now().toString(36)}`;
  const db = await pgClient();
  const redis = redisClient();
  try {
    await db.query(`CREATE SCHEMA ${tag}; CREATE TABLE ${tag}.t1 (id int PRIMARY KEY)`);
    const home = scratchHome();
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: replicant\n    schema: ${tag}_typo\n    types: [TABLE]\n`,
    );
    const id = `${tag}_full`;
    const res = await runReplicant([
      "full",
      home.pgConn,
      home.redisConn,
      "--filter",
      filter,
      "--id",
      id,
      "--home",
      home.dir,
    ]);
    assert.equal(res.code, 2, res.stdout + res.stderr);
    assert.match(
      res.stderr,
      new RegExp(
        `^replicant: --filter ${filter}: allow: selects no table of PostgreSQL database ` +
          `"replicant" at ${env.pg.host}:${env.pg.port}, which has:\n`,
      ),
    );
    assert.match(res.stderr, new RegExp(`\n  schema ${tag}: t1\n`));
    assert.match(res.stderr, /\n {2}schema public: /);
    assert.equal(await redis.exists(`replicate_io_checkpoint_default_${id}`), 0, "no state");
    const slots = await db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [
      `replicant_default_${id}`,
    ]);
    assert.equal(slots.rowCount, 0, "no slot");
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${tag} CASCADE`);
    await db.end();
    redis.disconnect();
  }
});

Deno.test("bad input: a filter that selects no table (MariaDB)", async () => {
  const tag = `empty_sel_my_${Date.now().toString(36)}`;
  const db = await mysql.createConnection({
    host: env.mysql.host,
    port: env.mysql.port,
    user: env.mysql.user,
    password: env.mysql.password,
  });
  const redis = redisClient();
  try {
    await db.query(`CREATE DATABASE ${tag}`);
    await db.query(`CREATE TABLE ${tag}.t1 (id int PRIMARY KEY)`);
    await db.query(`CREATE TABLE ${tag}.t2 (id int PRIMARY KEY)`);
    const home = scratchHome();
    const conn = home.write(
      "mysql.yaml",
      `type: MARIADB\nhost: ${env.mysql.host}\nport: ${env.mysql.port}\n` +
        `username: ${env.mysql.user}\npassword: "${env.mysql.password}"\n`,
    );
    const filter = home.write(
      "filter.yaml",
      `allow:\n  - catalog: ${tag}\n    types: [TABLE]\n    allow: [orders]\n`,
    );
    const id = `${tag}_snap`;
    const res = await runReplicant(
      ["snapshot", conn, home.redisConn, "--filter", filter, "--id", id, "--home", home.dir],
    );
    assert.equal(res.code, 2, res.stdout + res.stderr);
    assert.match(
      res.stderr,
      new RegExp(
        `^replicant: --filter ${filter}: allow: selects no table of MariaDB at ` +
          `${env.mysql.host}:${env.mysql.port}, which has:\n`,
      ),
    );
    assert.match(res.stderr, new RegExp(`\n  database ${tag}: t1, t2\n`));
    assert.equal(await redis.exists(`replicate_io_checkpoint_default_${id}`), 0, "no state");
  } finally {
    await db.query(`DROP DATABASE IF EXISTS ${tag}`);
    await db.end();
    redis.disconnect();
  }
});
