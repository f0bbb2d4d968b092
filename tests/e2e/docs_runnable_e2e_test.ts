/**
 * End-to-end: the documentation's example commands run as written. Every shell block
 * marked ```sh runnable in README.md and docs/quickstart.md runs, in order, in one bash
 * session per document, with `set -euo pipefail`, in a fresh `git clone` of this
 * repository (its committed HEAD): nothing built, nothing installed in it, as a new user
 * meets it. The Quickstart runs twice, since a user will run it again. A failing block fails
 * the test, naming the document and line.
 *
 * The blocks name each port as "${REPLICANT_PG_PORT:-55432}" (and so on), so they follow this
 * run's services (REPLICANT_*_PORT) as they follow a user's; the clone's conf/conn files name
 * the default ports and are edited to this run's, as the Quickstart tells a user with other
 * ports to do. On a default setup nothing changes.
 *
 * The slot another id of the same connection file would own (the demo's, left behind as by
 * a demo stopped before its cleanup) is there throughout: the documents never meet it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import type pg from "pg";
import { loadConnection, type PostgresConnection } from "../../src/config/mod.ts";
import { slotNameOf } from "../../src/source/postgres/pg_replication_slot.ts";
import { ownerCommentStatement } from "../../src/source/postgres/pg_source_ownership.ts";
import { deleteKeys, pgClient, redisClient } from "../helpers/clients.ts";
import { repoRoot } from "../helpers/replicant.ts";
import { serviceEnv } from "../helpers/services.ts";

interface Block {
  doc: string;
  line: number;
  text: string;
}

/** The ```sh runnable blocks of a markdown document, in order. */
export function runnableBlocks(doc: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!/^```sh runnable\s*$/.test(lines[i])) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    assert.ok(end < lines.length, `${doc}:${i + 1}: a runnable block without its closing fence`);
    blocks.push({ doc, line: start + 1, text: lines.slice(start, end).join("\n") });
    i = end;
  }
  return blocks;
}

const env = serviceEnv();
const DEFAULT_PORTS: [number, number][] = [
  [55432, env.pg.port],
  [53306, env.mysql.port],
  [56379, env.redis.port],
];

const PORT_VARIABLES: Record<number, string> = {
  55432: "REPLICANT_PG_PORT",
  53306: "REPLICANT_MYSQL_PORT",
  56379: "REPLICANT_REDIS_PORT",
};

/** Default ports a block names other than as `${REPLICANT_…_PORT:-port}`. */
export function hardCodedPorts(text: string): string[] {
  return [...text.matchAll(/(\$\{(\w+):-)?\b(55432|53306|56379)\b(\})?/g)]
    .filter((m) => !(m[2] === PORT_VARIABLES[Number(m[3])] && m[4] === "}"))
    .map((m) => m[0]);
}

/** The default ports in a connection file replaced by this run's, where they differ. */
function onTheseServices(text: string): string {
  let out = text;
  for (const [from, to] of DEFAULT_PORTS) {
    if (from !== to) out = out.replace(new RegExp(`\\b${from}\\b`, "g"), String(to));
  }
  return out;
}

/** One document's blocks as one bash script, each announced with where it comes from. */
function scriptOf(blocks: Block[]): string {
  return [
    "set -euo pipefail",
    ...blocks.map((b) => `echo '::: ${b.doc}:${b.line}'\n${b.text}`),
    "echo '::: done'",
  ].join("\n");
}

function runScript(dir: string, script: string): { code: number; out: string } {
  const file = join(dir, ".runnable.sh");
  writeFileSync(file, script);
  const r = spawnSync("bash", [file], {
    cwd: dir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    // stderr into the same text: `2>&1` keeps the order of what a user sees.
    shell: false,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60_000,
    env: { ...Deno.env.toObject() },
  });
  return { code: r.status ?? 1, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

/** The block a failed script was in: the last `::: doc:line` it announced. */
function failedBlock(out: string): string {
  const marks = [...out.matchAll(/^::: (.+)$/gm)];
  return marks.length > 0 ? marks[marks.length - 1][1] : "(before the first block)";
}

Deno.test("docs: runnable blocks are found where expected", () => {
  const readme = runnableBlocks("README.md", readFileSync(join(repoRoot, "README.md"), "utf8"));
  const more = runnableBlocks(
    "docs/quickstart.md",
    readFileSync(join(repoRoot, "docs", "quickstart.md"), "utf8"),
  );
  assert.ok(readme.length >= 4, `README.md has ${readme.length} runnable blocks`);
  assert.ok(more.length >= 2, `docs/quickstart.md has ${more.length} runnable blocks`);
  // Every port follows the services' variables, as scripts/services and the demo do.
  for (const b of [...readme, ...more]) {
    assert.deepEqual(hardCodedPorts(b.text), [], `${b.doc}:${b.line}: a hard-coded port`);
  }
  assert.deepEqual(
    hardCodedPorts('psql -p "${REPLICANT_PG_PORT:-55432}" -p 56379 ${REPLICANT_PG_PORT:-53306}'),
    ["56379", "${REPLICANT_PG_PORT:-53306}"],
  );
  assert.deepEqual(
    runnableBlocks("x.md", "a\n```sh runnable\necho 1\n```\n```sh\nnot this\n```\n"),
    [{ doc: "x.md", line: 3, text: "echo 1" }],
  );
});

Deno.test({
  name: "docs: README and docs/quickstart.md run as written in a fresh clone, twice",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = mkdtempSync(join(tmpdir(), "replicant-fresh-clone-"));
    const clone = join(dir, "replicant");
    const redis = redisClient();
    const db = await pgClient();
    const slotOf = (id: string) =>
      slotNameOf(
        loadConnection(join(clone, "conf", "conn", "postgresql.yaml")) as PostgresConnection,
        "default",
        id,
      );
    const slots: string[] = [];
    try {
      const cloned = spawnSync("git", ["clone", "--quiet", repoRoot, clone], { encoding: "utf8" });
      assert.equal(cloned.status, 0, cloned.stderr);
      for (const name of ["postgresql", "mysql", "redis_stream"]) {
        const file = join(clone, "conf", "conn", `${name}.yaml`);
        writeFileSync(file, onTheseServices(readFileSync(file, "utf8")));
      }
      // The demo's slot and publication, owned by default/demo, as `replicant full --id demo`
      // leaves them until it drops them.
      const demoSlot = slotOf("demo");
      slots.push(demoSlot, slotOf("quickstart"));
      for (const slot of slots) await dropPgResources(db, slot);
      await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [demoSlot]);
      await db.query(`CREATE PUBLICATION "${demoSlot}"`);
      await db.query(ownerCommentStatement(demoSlot, { group: "default", id: "demo" }));
      const docs = ["README.md", "docs/quickstart.md"].map((doc) =>
        runnableBlocks(doc, readFileSync(join(clone, doc), "utf8"))
      );
      for (const round of [1, 2]) {
        for (const blocks of docs) {
          const r = runScript(clone, scriptOf(blocks));
          assert.equal(
            r.code,
            0,
            `round ${round}: the block at ${failedBlock(r.out)} failed (exit ${r.code}):\n${r.out}`,
          );
          assert.match(r.out, /::: done/);
          if (blocks[0].doc === "README.md") {
            // The snapshot of the sample data, the update as a change event, the summary.
            assert.match(r.out, /^total +361,000 /m, r.out);
            assert.match(r.out, /"payload":\{"before":null,"after":\{"id":1,/, r.out);
            assert.match(r.out, /"op":"u"/, r.out);
            assert.match(r.out, /^1 transaction\(s\); checkpoint /m, r.out);
          } else {
            assert.match(r.out, /^total +20,000 /m, r.out);
            assert.match(r.out, /snapshot: 16000 rows from shop_my_orders/, r.out);
            assert.match(
              r.out,
              /^applied 3 change\(s\) up to \d+-\d+; the copy has 16000 rows$/m,
              r.out,
            );
          }
        }
        // The changes arrived once each, also on the second round (streams replaced).
        assert.equal(await redis.xlen(`replicant_shop_orders_cdc_logs`), 3);
        assert.equal(await redis.xlen(`shop_my_orders_cdc_logs`), 3);
      }
      // The demo's slot is untouched; the quickstart dropped its own.
      const left = await db.query(
        "SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY($1) ORDER BY 1",
        [slots],
      );
      assert.deepEqual(left.rows.map((r: { slot_name: string }) => r.slot_name), [demoSlot]);
    } finally {
      // What the documents leave for a user to explore, removed here.
      for (const slot of slots) await dropPgResources(db, slot);
      await db.query("DROP SCHEMA IF EXISTS shop CASCADE");
      await db.end();
      const my = await mysql.createConnection({
        host: env.mysql.host,
        port: env.mysql.port,
        user: env.mysql.user,
        password: env.mysql.password,
      });
      await my.query("DROP DATABASE IF EXISTS shop_my");
      await my.end();
      await deleteKeys(redis, "replicant_shop_*");
      await deleteKeys(redis, "shop_my_*");
      await deleteKeys(redis, "replicate_io_*quickstart*");
      redis.disconnect();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

async function dropPgResources(db: pg.Client, slot: string): Promise<void> {
  await db.query(
    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots " +
      "WHERE slot_name = $1 AND NOT active",
    [slot],
  );
  await db.query(`DROP PUBLICATION IF EXISTS "${slot}"`);
}
