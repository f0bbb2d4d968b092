/**
 * Bad input through the binary: each case ends in one clear message naming the file and
 * key, the documented exit code, and no stack trace.
 */
import assert from "node:assert/strict";
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
    says: [/--threads/],
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
