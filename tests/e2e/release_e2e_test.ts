/**
 * End-to-end: `scripts/release` builds this machine's archive and SHA256SUMS; the binary
 * inside reports the release version and snapshots a table into Redis; `scripts/install.sh`,
 * served over HTTP, installs it, and refuses a corrupted archive without installing anything.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { deleteKeys, pgClient, readStream, redisClient } from "../helpers/clients.ts";
import { repoRoot, type RunResult, scratchHome } from "../helpers/replicant.ts";

const VERSION = "0.0.0-test";
const OS: Record<string, string> = { linux: "linux", darwin: "macos" };
const ARCH: Record<string, string> = { x64: "x64", arm64: "arm64" };
const TARGET = `${OS[process.platform]}-${ARCH[process.arch]}`;
const NAME = `replicant-${VERSION}-${TARGET}`;
const ARCHIVE = `${NAME}.tar.gz`;
const SCHEMA = `e2e_release_${process.pid}`;

function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 128, stdout, stderr }));
  });
}

/** Serves `/<prefix>/<file>` from the folder given for each prefix. */
async function serve(folders: Record<string, string>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const [, prefix, file, ...rest] = (req.url ?? "").split("/");
    const dir = folders[prefix];
    const full = dir && file && rest.length === 0 ? path.join(dir, file) : "";
    if (!full || !existsSync(full) || !statSync(full).isFile()) {
      res.writeHead(404).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-length": statSync(full).size });
    createReadStream(full).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server };
}

Deno.test({
  name: "release archive, its binary (version, snapshot) and install.sh (good and corrupted)",
  ignore: !OS[process.platform] || !ARCH[process.arch],
  fn: async (t) => {
    const work = mkdtempSync(path.join(tmpdir(), "replicant-release-"));
    const out = path.join(work, "release");
    try {
      await t.step("scripts/release builds the archive and SHA256SUMS", async () => {
        const res = await run(path.join(repoRoot, "scripts", "release"), [
          VERSION,
          "--out",
          out,
          "--targets",
          TARGET,
        ], { cwd: repoRoot });
        assert.equal(res.code, 0, res.stderr + res.stdout);
        assert.match(res.stdout, new RegExp(`replicant ${VERSION.replaceAll(".", "\\.")} `));
        assert.deepEqual(readdirSync(out).sort(), [ARCHIVE, "SHA256SUMS"].sort());
        const sums = readFileSync(path.join(out, "SHA256SUMS"), "utf8");
        assert.match(sums, new RegExp(`^[0-9a-f]{64}  ${ARCHIVE.replaceAll(".", "\\.")}\\n$`));
        const check = await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: out });
        assert.equal(check.code, 0, check.stderr + check.stdout);
        assert.match(check.stdout, /: OK$/m);
      });

      const unpacked = path.join(work, "unpacked");
      const bin = path.join(unpacked, NAME, "replicant");
      await t.step(
        "the archive: the binary, conf/, docs/, examples/, README.md, LICENSE",
        async () => {
          mkdirSync(unpacked);
          const tar = await run("tar", ["-xzf", path.join(out, ARCHIVE), "-C", unpacked]);
          assert.equal(tar.code, 0, tar.stderr);
          assert.deepEqual(readdirSync(unpacked), [NAME]);
          const top = readdirSync(path.join(unpacked, NAME)).sort();
          assert.deepEqual(top, ["LICENSE", "README.md", "conf", "docs", "examples", "replicant"]);
          assert.ok(existsSync(path.join(unpacked, NAME, "conf", "conn", "postgresql.yaml")));
          // The documents link examples/consumer.ts: it is there beside them.
          assert.ok(existsSync(path.join(unpacked, NAME, "examples", "consumer.ts")));
          assert.match(
            readFileSync(path.join(unpacked, NAME, "LICENSE"), "utf8"),
            /Apache License\s+Version 2\.0/,
          );
          const version = await run(bin, ["--version"]);
          assert.equal(version.code, 0, version.stderr);
          assert.match(
            version.stdout,
            new RegExp(
              `^replicant ${VERSION.replaceAll(".", "\\.")} \\(commit \\w+, built \\d{4}-`,
            ),
          );
          assert.match(version.stdout, /(deno compile|bun build --compile) /);
        },
      );

      await t.step("the released binary snapshots a table into Redis", async () => {
        const db = await pgClient();
        const redis = redisClient();
        const home = scratchHome();
        try {
          await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
          await db.query(`CREATE TABLE ${SCHEMA}.items (id int PRIMARY KEY, name text)`);
          await db.query(
            `INSERT INTO ${SCHEMA}.items SELECT g, 'item ' || g FROM generate_series(1, 250) g`,
          );
          await deleteKeys(redis, `replicant_${SCHEMA}_*`);
          const filter = home.write(
            "filter.yaml",
            `allow:\n  - catalog: replicant\n    schema: ${SCHEMA}\n    types: [TABLE]\n`,
          );
          const res = await run(bin, [
            "snapshot",
            home.pgConn,
            home.redisConn,
            "--filter",
            filter,
            "--id",
            SCHEMA,
            "--home",
            home.dir,
            "--overwrite",
          ]);
          assert.equal(res.code, 0, res.stderr + res.stdout);
          const entries = await readStream(redis, `replicant_${SCHEMA}_items`);
          assert.equal(entries.length, 250);
          const value = JSON.parse(entries[0][1][1]);
          assert.deepEqual(value.payload.after, { id: 1, name: "item 1" });
          assert.equal(value.payload.source.version, VERSION);
        } finally {
          await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
          await deleteKeys(redis, `replicant_${SCHEMA}_*`);
          await deleteKeys(redis, `replicate_io_*${SCHEMA}*`);
          await db.end();
          redis.disconnect();
          rmSync(home.dir, { recursive: true, force: true });
        }
      });

      // A second folder with the same SHA256SUMS and a corrupted archive.
      const bad = path.join(work, "bad");
      mkdirSync(bad);
      copyFileSync(path.join(out, "SHA256SUMS"), path.join(bad, "SHA256SUMS"));
      const bytes = readFileSync(path.join(out, ARCHIVE));
      for (const at of [100, bytes.length >> 1, bytes.length - 100]) bytes[at] ^= 0xff;
      writeFileSync(path.join(bad, ARCHIVE), bytes);

      const { url, server } = await serve({ good: out, bad });
      const install = path.join(repoRoot, "scripts", "install.sh");
      try {
        await t.step("install.sh installs from an HTTP server and the binary runs", async () => {
          const prefix = path.join(work, "prefix");
          const res = await run("sh", [install, "--prefix", prefix], {
            env: { REPLICANT_INSTALL_BASE_URL: `${url}/good` },
          });
          assert.equal(res.code, 0, res.stderr + res.stdout);
          assert.match(res.stdout, /checksum ok/);
          const installed = path.join(prefix, "bin", "replicant");
          const version = await run(installed, ["--version"]);
          assert.equal(version.code, 0, version.stderr);
          assert.match(version.stdout, new RegExp(`^replicant ${VERSION.replaceAll(".", "\\.")} `));
          assert.ok(existsSync(path.join(prefix, "share", "replicant", "conf", "conn")));
          assert.ok(existsSync(path.join(prefix, "share", "replicant", "examples", "consumer.ts")));
        });

        await t.step("install.sh refuses a corrupted archive and installs nothing", async () => {
          const prefix = path.join(work, "prefix-bad");
          const res = await run("sh", [install, "--prefix", prefix, "--version", VERSION], {
            env: { REPLICANT_INSTALL_BASE_URL: `${url}/bad` },
          });
          assert.notEqual(res.code, 0, res.stdout);
          assert.match(res.stderr, /checksum mismatch/);
          assert.ok(!existsSync(path.join(prefix, "bin", "replicant")), "a binary was installed");
          assert.ok(!existsSync(prefix), "the prefix was created");
        });
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
});
