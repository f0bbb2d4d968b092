/**
 * A sample schema of our own with the features of Pagila that matter to replication: a
 * table partitioned by month whose rows move between partitions, an enum, a domain over
 * integer, arrays (some with a lower bound other than 1), a stored generated column, a
 * tsvector, values stored out of line (TOAST), foreign keys with ON DELETE CASCADE,
 * json/jsonb, a keyless table with REPLICA IDENTITY FULL (selected) and a keyless table with
 * the default replica identity that the application keeps writing (not selected, in a schema
 * of its own). Plus a seeded random writer and a pgbench script for load.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { prng } from "./change_log.ts";
import { serviceEnv } from "./services.ts";

/** The selected tables (all of schema `s`) and what each cdc stream holds last. */
export const PAGILA_LIKE_TABLES = [
  "country",
  "city",
  "customer",
  "film",
  "film_actor",
  "payment",
  "audit_log",
] as const;

/** First payment id the pgbench script uses; the writer stays below. */
const BENCH_PAYMENT_IDS = 10_000_000;
/** Customers the pgbench script writes to (in country 1, which the writer never deletes). */
const BENCH_CUSTOMERS = 1000;

/** Schema `s` (and `s_app`) with `scale` times the base rows. */
export function pagilaLikeSql(s: string, scale = 1): string {
  const n = (k: number) => Math.round(k * scale);
  return `
    CREATE SCHEMA ${s}; CREATE SCHEMA ${s}_app;
    CREATE TYPE ${s}.mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
    CREATE DOMAIN ${s}.year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
    CREATE TABLE ${s}.country (country_id serial PRIMARY KEY, country text NOT NULL,
      last_update timestamptz NOT NULL DEFAULT now());
    CREATE TABLE ${s}.city (city_id serial PRIMARY KEY, city text NOT NULL,
      country_id int NOT NULL REFERENCES ${s}.country ON DELETE CASCADE,
      last_update timestamptz NOT NULL DEFAULT now());
    CREATE TABLE ${s}.customer (customer_id serial PRIMARY KEY,
      city_id int NOT NULL REFERENCES ${s}.city ON DELETE CASCADE,
      first_name text NOT NULL, last_name text NOT NULL, email text,
      activebool boolean NOT NULL DEFAULT true, create_date date NOT NULL DEFAULT '2022-01-01',
      tags text[], last_update timestamptz DEFAULT now());
    CREATE TABLE ${s}.film (film_id serial PRIMARY KEY, title text NOT NULL, description text,
      release_year ${s}.year, rating ${s}.mpaa_rating DEFAULT 'G', special_features text[],
      scores int[], fulltext tsvector, rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
      length smallint,
      length_hours numeric(4,2) GENERATED ALWAYS AS (round(length / 60.0, 2)) STORED,
      attrs jsonb, meta json, poster bytea, last_update timestamptz NOT NULL DEFAULT now());
    CREATE TABLE ${s}.film_actor (actor_id int NOT NULL,
      film_id int NOT NULL REFERENCES ${s}.film ON DELETE CASCADE,
      last_update timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (actor_id, film_id));
    CREATE TABLE ${s}.payment (payment_id int NOT NULL,
      customer_id int NOT NULL REFERENCES ${s}.customer ON DELETE CASCADE,
      amount numeric(5,2) NOT NULL, payment_date timestamptz NOT NULL,
      PRIMARY KEY (payment_date, payment_id)) PARTITION BY RANGE (payment_date);
    ${
    [1, 2, 3, 4].map((m) =>
      `CREATE TABLE ${s}.payment_p2022_0${m} PARTITION OF ${s}.payment
         FOR VALUES FROM ('2022-0${m}-01 00:00:00+00') TO ('2022-0${m + 1}-01 00:00:00+00');`
    ).join("\n")
  }
    CREATE TABLE ${s}.audit_log (at timestamptz NOT NULL, action text NOT NULL, detail jsonb);
    ALTER TABLE ${s}.audit_log REPLICA IDENTITY FULL;
    CREATE TABLE ${s}_app.scratch (note text);
    CREATE SEQUENCE ${s}.bench_payment_id START ${BENCH_PAYMENT_IDS};
    CREATE SEQUENCE ${s}.bench_note;

    INSERT INTO ${s}.country (country)
      SELECT 'country ' || i FROM generate_series(1, ${n(20)}) i;
    INSERT INTO ${s}.city (city, country_id)
      SELECT 'city ' || i, 1 + (i % ${n(20)}) FROM generate_series(1, ${n(200)}) i;
    -- The pgbench customers live in country 1 (city 20, whose country is 1).
    INSERT INTO ${s}.customer (city_id, first_name, last_name, email, tags)
      SELECT CASE WHEN i <= ${BENCH_CUSTOMERS} THEN ${n(20)} ELSE 1 + (i % ${n(200)}) END,
             'first ' || i, 'last ' || i, 'c' || i || '@example.com',
             CASE WHEN i % 3 = 0 THEN ARRAY['vip', 'tag ' || i] END
        FROM generate_series(1, ${Math.max(n(5000), BENCH_CUSTOMERS + 100)}) i;
    INSERT INTO ${s}.film (title, description, release_year, rating, special_features, scores,
        fulltext, rental_rate, length, attrs, meta, poster)
      SELECT 'film ' || i,
             CASE WHEN i % 5 = 0
               THEN (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 250) g)
               ELSE 'a short description of film ' || i END,
             1990 + i % 30, (ARRAY['G', 'PG', 'PG-13', 'R', 'NC-17'])[1 + i % 5]::${s}.mpaa_rating,
             ARRAY['Trailers', 'Deleted Scenes'], 
             CASE WHEN i % 4 = 0 THEN '[0:2]={1,2,3}'::int[] ELSE ARRAY[i, i + 1] END,
             to_tsvector('english', 'film number ' || i), 4.99, 60 + i % 120,
             jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i)), '{"v": 1}',
             decode(md5(i::text), 'hex')
        FROM generate_series(1, ${n(1500)}) i;
    INSERT INTO ${s}.film_actor (actor_id, film_id)
      SELECT 1 + i % 200, 1 + i % ${n(1500)} FROM generate_series(1, ${n(4000)}) i
      ON CONFLICT DO NOTHING;
    INSERT INTO ${s}.payment
      SELECT i, 1 + i % ${Math.max(n(5000), BENCH_CUSTOMERS + 100)}, (i % 1000) / 100.0,
             timestamptz '2022-01-01 00:00:00+00' + (i % 119) * interval '1 day' + i * interval '1 second'
        FROM generate_series(1, ${n(60000)}) i;
    INSERT INTO ${s}.audit_log
      SELECT timestamptz '2022-01-01 00:00:00+00' + i * interval '1 minute', 'seed',
             jsonb_build_object('n', i)
        FROM generate_series(1, ${n(60000)}) i;
    INSERT INTO ${s}_app.scratch SELECT 'note ' || i FROM generate_series(1, 100) i;
    SELECT setval('${s}.country_country_id_seq', 1000000);
    SELECT setval('${s}.city_city_id_seq', 1000000);
    SELECT setval('${s}.customer_customer_id_seq', 1000000);
    SELECT setval('${s}.film_film_id_seq', 1000000);`;
}

/** The pgbench script: customers of country 1 and their payments (moved across months). */
export function pgbenchScript(s: string): string {
  return `\\set cid random(1, ${BENCH_CUSTOMERS})
\\set amount random(1, 99999)
\\set day random(0, 118)
BEGIN;
UPDATE ${s}.customer SET email = 'bench' || :amount || '@example.com', last_update = now()
  WHERE customer_id = :cid;
INSERT INTO ${s}.payment VALUES (nextval('${s}.bench_payment_id'), :cid, :amount / 1000.0,
  timestamptz '2022-01-01 00:00:00+00' + :day * interval '1 day');
UPDATE ${s}.payment SET payment_date = payment_date + interval '30 days', amount = amount + 1
  WHERE payment_id = currval('${s}.bench_payment_id') - 3 AND payment_date < '2022-04-01';
SELECT nextval('${s}.bench_note') AS note \\gset
INSERT INTO ${s}_app.scratch VALUES ('bench ' || :note);
UPDATE ${s}_app.scratch SET note = note || '+' WHERE note = 'bench ' || :note;
DELETE FROM ${s}_app.scratch WHERE note = 'bench ' || (:note - 10) || '+';
END;
`;
}

/** pgbench with the script at `rate` transactions/s until stopped; `stop` gives its output. */
export function startPgbench(s: string, dir: string, rate = 20) {
  const env = serviceEnv().pg;
  const script = join(dir, "pagila_like.pgbench");
  writeFileSync(script, pgbenchScript(s));
  const bin = join(Deno.env.get("REPLICANT_PG_BIN") ?? "/usr/lib/postgresql/15/bin", "pgbench");
  const child = spawn(bin, [
    "-n",
    "-h",
    env.host,
    "-p",
    String(env.port),
    "-U",
    env.user,
    "-c",
    "2",
    "-R",
    String(rate),
    "-T",
    "3600",
    "-f",
    script,
    env.database,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  let stopped = false;
  const done = new Promise<boolean>((resolve) =>
    child.on("close", (code, signal) => resolve(code === 0 || (stopped && signal !== null)))
  );
  return {
    /** Stops pgbench; `ok` when it ran without a failed transaction until then. */
    async stop(): Promise<{ ok: boolean; output: string }> {
      stopped = true;
      if (child.exitCode === null) child.kill("SIGINT");
      const ended = await done;
      return { ok: ended && !/aborted|ERROR|FATAL/.test(out), output: out };
    },
  };
}

type Statement = [string, unknown[]];

/**
 * Random transactions on the sample schema, from a seed: customers, films (out-of-line
 * descriptions rewritten or left alone, arrays with other lower bounds), cast, payments
 * inserted, changed, moved to another month (a partition change) and deleted, audit rows,
 * cascades from deleting a country, and the application's own keyless table.
 */
export class PagilaLikeWriter {
  readonly #rand: () => number;
  #stopping = false;
  #running: Promise<void> | null = null;
  #next = 2_000_000;
  #nextPayment = 5_000_000;
  transactions = 0;
  /** Known rows (ids); stale after cascades, which statements tolerate. */
  readonly #customers: number[] = [];
  readonly #films: number[] = [];
  readonly #payments: [number, string][] = [];
  readonly #countries: number[] = [];

  constructor(
    private readonly db: pg.Client,
    private readonly s: string,
    seed: number,
  ) {
    this.#rand = prng(seed);
  }

  /** Reads the ids the writer picks from. */
  async load(): Promise<void> {
    const ids = async (sql: string) =>
      (await this.db.query({ text: sql, rowMode: "array" })).rows.map((r: unknown[]) => r);
    for (
      const [id] of await ids(
        `SELECT customer_id FROM ${this.s}.customer WHERE customer_id > ${BENCH_CUSTOMERS}`,
      )
    ) {
      this.#customers.push(Number(id));
    }
    for (const [id] of await ids(`SELECT film_id FROM ${this.s}.film`)) {
      this.#films.push(Number(id));
    }
    for (
      const [id, d] of await ids(
        `SELECT payment_id, payment_date::text FROM ${this.s}.payment p JOIN ${this.s}.customer c USING (customer_id) WHERE c.customer_id > ${BENCH_CUSTOMERS} AND payment_id < ${BENCH_PAYMENT_IDS}`,
      )
    ) {
      this.#payments.push([Number(id), String(d)]);
    }
    for (const [id] of await ids(`SELECT country_id FROM ${this.s}.country WHERE country_id > 1`)) {
      this.#countries.push(Number(id));
    }
  }

  #pick<T>(list: T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.#rand() * list.length)];
  }

  #text(length: number): string {
    let out = "";
    while (out.length < length) out += Math.floor(this.#rand() * 2 ** 52).toString(36);
    return out.slice(0, length);
  }

  #date(): string {
    const day = Math.floor(this.#rand() * 119);
    return new Date(Date.UTC(2022, 0, 1) + day * 86_400_000 + Math.floor(this.#rand() * 86_400_000))
      .toISOString();
  }

  /** One random operation. */
  #op(out: Statement[]): void {
    const s = this.s;
    const r = this.#rand();
    const id = () => this.#next++;
    if (r < 0.1) {
      const c = id();
      this.#customers.push(c);
      out.push([
        `INSERT INTO ${s}.customer (customer_id, city_id, first_name, last_name, email, tags)
           VALUES ($1, $2, 'new', $3, $4, $5)`,
        [c, 1 + Math.floor(this.#rand() * 200), this.#text(8), `${c}@example.com`, [this.#text(5)]],
      ]);
    } else if (r < 0.2) {
      out.push([
        `UPDATE ${s}.customer SET email = $1, tags = $2, activebool = NOT activebool
           WHERE customer_id = $3`,
        [this.#text(10) + "@example.com", [this.#text(3), null, "x"], this.#pick(this.#customers)],
      ]);
    } else if (r < 0.24) {
      // Deletes its payments too (ON DELETE CASCADE).
      out.push([`DELETE FROM ${s}.customer WHERE customer_id = $1`, [this.#pick(this.#customers)]]);
    } else if (r < 0.3) {
      const f = id();
      this.#films.push(f);
      const big = this.#rand() < 0.5;
      out.push([
        `INSERT INTO ${s}.film (film_id, title, description, release_year, rating, scores,
           fulltext, length, attrs, meta, poster)
           VALUES ($1, $2, $3, $4, 'R', $5::int[], to_tsvector('english', $2), $6, $7, $8, $9)`,
        [
          f,
          `film ${f}`,
          big ? this.#text(9000) : "short",
          1901 + Math.floor(this.#rand() * 250),
          this.#rand() < 0.5 ? "[-1:1]={7,8,9}" : "{1,2}",
          Math.floor(this.#rand() * 200),
          JSON.stringify({ n: f, big: this.#rand() < 0.3 ? this.#text(4000) : "" }),
          `{"f": ${f}}`,
          new Uint8Array(64).map(() => Math.floor(this.#rand() * 256)),
        ],
      ]);
    } else if (r < 0.42) {
      // Leaves the description (often stored out of line) unchanged.
      out.push([
        `UPDATE ${s}.film SET title = $1, rating = 'PG-13', scores = $2::int[], length = $3,
           attrs = attrs || '{"seen": true}', last_update = now() WHERE film_id = $4`,
        [
          this.#text(12),
          this.#rand() < 0.5 ? "[0:1]={4,5}" : "{6}",
          Math.floor(this.#rand() * 300),
          this.#pick(this.#films),
        ],
      ]);
    } else if (r < 0.46) {
      out.push([
        `UPDATE ${s}.film SET description = $1 WHERE film_id = $2`,
        [this.#text(3000 + Math.floor(this.#rand() * 6000)), this.#pick(this.#films)],
      ]);
    } else if (r < 0.48) {
      out.push([`DELETE FROM ${s}.film WHERE film_id = $1`, [this.#pick(this.#films)]]);
    } else if (r < 0.54) {
      out.push([
        `INSERT INTO ${s}.film_actor (actor_id, film_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [Math.floor(this.#rand() * 300), this.#pick(this.#films)],
      ]);
      out.push([
        `DELETE FROM ${s}.film_actor WHERE actor_id = $1`,
        [Math.floor(this.#rand() * 300)],
      ]);
    } else if (r < 0.66) {
      const p = this.#nextPayment++;
      const d = this.#date();
      this.#payments.push([p, d]);
      out.push([
        `INSERT INTO ${s}.payment SELECT $1, $2, $3, $4 WHERE EXISTS
           (SELECT 1 FROM ${s}.customer WHERE customer_id = $2)`,
        [p, this.#pick(this.#customers), (Math.floor(this.#rand() * 99999) / 100).toFixed(2), d],
      ]);
    } else if (r < 0.76) {
      // To another month: the row moves to another partition (its key changes).
      const at = Math.floor(this.#rand() * this.#payments.length);
      const pay = this.#payments[at];
      if (pay) {
        const d = this.#date();
        this.#payments[at] = [pay[0], d];
        out.push([
          `UPDATE ${s}.payment SET payment_date = $1, amount = amount / 2 WHERE payment_id = $2`,
          [d, pay[0]],
        ]);
      }
    } else if (r < 0.8) {
      out.push([
        `UPDATE ${s}.payment SET amount = $1 WHERE payment_id = $2`,
        [(Math.floor(this.#rand() * 99999) / 100).toFixed(2), this.#pick(this.#payments)?.[0]],
      ]);
    } else if (r < 0.84) {
      out.push([`DELETE FROM ${s}.payment WHERE payment_id = $1`, [
        this.#pick(this.#payments)?.[0],
      ]]);
    } else if (r < 0.92) {
      const x = this.#text(6);
      out.push([
        `INSERT INTO ${s}.audit_log VALUES ($1, 'write', $2)`,
        [this.#date(), JSON.stringify({ x })],
      ]);
      out.push([
        `UPDATE ${s}.audit_log SET action = 'rewritten' WHERE ctid =
           (SELECT ctid FROM ${s}.audit_log WHERE action <> 'rewritten' ORDER BY at, detail::text LIMIT 1)`,
        [],
      ]);
      if (this.#rand() < 0.3) {
        out.push([
          `DELETE FROM ${s}.audit_log WHERE ctid =
             (SELECT ctid FROM ${s}.audit_log ORDER BY at DESC, detail::text LIMIT 1)`,
          [],
        ]);
      }
    } else if (r < 0.93) {
      // Cities, customers and their payments go with it.
      const c = this.#countries.splice(Math.floor(this.#rand() * this.#countries.length), 1)[0];
      if (c !== undefined) out.push([`DELETE FROM ${s}.country WHERE country_id = $1`, [c]]);
    } else {
      out.push([`INSERT INTO ${s}_app.scratch VALUES ($1)`, [this.#text(5)]]);
      // Never pgbench's rows: no lock waits between the two writers.
      out.push([
        `UPDATE ${s}_app.scratch SET note = note || '!' WHERE note < $1 AND note NOT LIKE 'bench%'`,
        [this.#text(2)],
      ]);
      out.push([
        `DELETE FROM ${s}_app.scratch WHERE note > $1 AND note NOT LIKE 'bench%'`,
        [this.#text(2)],
      ]);
    }
  }

  async #run(statements: Statement[]): Promise<string> {
    await this.db.query("BEGIN");
    try {
      for (const [sql, params] of statements) await this.db.query(sql, params);
      const r = await this.db.query("SELECT (txid_current() % 4294967296)::text AS x");
      await this.db.query("COMMIT");
      this.transactions++;
      return String(r.rows[0].x);
    } catch (err) {
      await this.db.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  /** One transaction of 1–4 operations. */
  async step(): Promise<void> {
    const statements: Statement[] = [];
    const count = 1 + Math.floor(this.#rand() * 4);
    for (let i = 0; i < count; i++) this.#op(statements);
    try {
      await this.#run(statements);
    } catch (err) {
      // A payment of a customer deleted by pgbench's or a cascade's doing: skip it.
      if ((err as { code?: string }).code !== "23503") throw err;
    }
  }

  /** Writes until `stop()`, which gives the writer's error if it stopped on one. */
  start(): void {
    this.#stopping = false;
    const running = (async () => {
      while (!this.#stopping) await this.step();
    })();
    running.catch(() => {}); // reported by stop()
    this.#running = running;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }

  /** One row into every selected table in one transaction: the last change of each stream. */
  async marker(): Promise<{ token: string }> {
    const s = this.s;
    const id = this.#next++;
    const token = await this.#run([
      [`INSERT INTO ${s}.country (country_id, country) VALUES ($1, 'marker')`, [id]],
      [`INSERT INTO ${s}.city (city_id, city, country_id) VALUES ($1, 'marker', $1)`, [id]],
      [
        `INSERT INTO ${s}.customer (customer_id, city_id, first_name, last_name)
           VALUES ($1, $1, 'marker', 'marker')`,
        [id],
      ],
      [`INSERT INTO ${s}.film (film_id, title) VALUES ($1, 'marker')`, [id]],
      [`INSERT INTO ${s}.film_actor (actor_id, film_id) VALUES (1, $1)`, [id]],
      [`INSERT INTO ${s}.payment VALUES ($1, $1, 1, '2022-04-30')`, [id]],
      [`INSERT INTO ${s}.audit_log VALUES (now(), 'marker', NULL)`, []],
    ]);
    return { token };
  }
}
