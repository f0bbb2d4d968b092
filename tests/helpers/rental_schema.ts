/**
 * A small film-rental schema with the features real sample databases (MySQL's Sakila) bring,
 * written for these tests: ENUM and SET columns with labels beyond the BMP, JSON, a table
 * without a key, TEXT and BLOB values up to a megabyte, foreign keys with ON DELETE CASCADE
 * and SET NULL, STORED and VIRTUAL generated columns, POINT, YEAR, BIT, DECIMAL, BIGINT
 * UNSIGNED, TIMESTAMP/DATETIME with fractions; a seeded random writer of rental-shop
 * transactions; and an independent reading of the tables as the entries must show them.
 */
import { Buffer } from "node:buffer";
import type mysql from "mysql2/promise";
import { setTimeout as sleep } from "node:timers/promises";
import { prng } from "./change_log.ts";

export const RENTAL_TABLES = [
  "language",
  "film",
  "address",
  "customer",
  "rental",
  "payment",
  "film_note",
] as const;
export type RentalTable = typeof RENTAL_TABLES[number];

/** Each table's key columns; none for the keyless `film_note`. */
export const RENTAL_KEYS: Record<RentalTable, string[]> = {
  language: ["language_id"],
  film: ["film_id"],
  address: ["address_id"],
  customer: ["customer_id"],
  rental: ["rental_id"],
  payment: ["payment_id"],
  film_note: [],
};

export const RENTAL_SCHEMA = [
  `CREATE TABLE language (
     language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
     name CHAR(20) NOT NULL,
     last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)`,
  `CREATE TABLE film (
     film_id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
     title VARCHAR(128) NOT NULL,
     description TEXT,
     long_description MEDIUMTEXT,
     release_year YEAR,
     language_id TINYINT UNSIGNED NOT NULL,
     rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99,
     length SMALLINT UNSIGNED,
     rating ENUM('G','PG','PG-13','R','NC-17','🎬 unrated') DEFAULT 'G',
     special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes','🍿 Extras'),
     metadata JSON,
     poster MEDIUMBLOB,
     title_upper VARCHAR(128) AS (UPPER(title)) STORED,
     title_length INT AS (CHAR_LENGTH(title)) VIRTUAL,
     last_update TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
     CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language (language_id)
       ON DELETE RESTRICT ON UPDATE CASCADE,
     CHECK (JSON_VALID(metadata)))`,
  `CREATE TABLE address (
     address_id INT UNSIGNED NOT NULL PRIMARY KEY,
     address VARCHAR(50) NOT NULL,
     district VARCHAR(20),
     postal_code VARCHAR(10),
     phone VARCHAR(20) NOT NULL,
     location POINT NOT NULL,
     flags BIT(8) NOT NULL DEFAULT b'0',
     last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
  `CREATE TABLE customer (
     customer_id INT UNSIGNED NOT NULL PRIMARY KEY,
     first_name VARCHAR(45) NOT NULL,
     last_name VARCHAR(45) NOT NULL,
     email VARCHAR(50),
     address_id INT UNSIGNED NOT NULL,
     active BOOLEAN NOT NULL DEFAULT TRUE,
     loyalty BIGINT UNSIGNED NOT NULL DEFAULT 0,
     create_date DATETIME(6) NOT NULL,
     CONSTRAINT fk_customer_address FOREIGN KEY (address_id) REFERENCES address (address_id)
       ON DELETE RESTRICT ON UPDATE CASCADE)`,
  `CREATE TABLE rental (
     rental_id INT UNSIGNED NOT NULL PRIMARY KEY,
     rental_date DATETIME NOT NULL,
     film_id SMALLINT UNSIGNED NOT NULL,
     customer_id INT UNSIGNED NOT NULL,
     return_date DATETIME,
     CONSTRAINT fk_rental_film FOREIGN KEY (film_id) REFERENCES film (film_id)
       ON DELETE CASCADE ON UPDATE CASCADE,
     CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id)
       ON DELETE CASCADE ON UPDATE CASCADE)`,
  `CREATE TABLE payment (
     payment_id INT UNSIGNED NOT NULL PRIMARY KEY,
     customer_id INT UNSIGNED NOT NULL,
     rental_id INT UNSIGNED,
     amount DECIMAL(5,2) NOT NULL,
     payment_date TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
     CONSTRAINT fk_payment_rental FOREIGN KEY (rental_id) REFERENCES rental (rental_id)
       ON DELETE SET NULL ON UPDATE CASCADE,
     CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id)
       ON DELETE CASCADE ON UPDATE CASCADE)`,
  // No key: staff notes on films, one line each.
  `CREATE TABLE film_note (
     film_id SMALLINT UNSIGNED NOT NULL,
     note VARCHAR(200) NOT NULL,
     noted_at DATETIME(3) NOT NULL)`,
];

type Conn = mysql.Connection;

const RATINGS = ["G", "PG", "PG-13", "R", "NC-17", "🎬 unrated"];
const FEATURES = ["Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes", "🍿 Extras"];
const WORDS = [
  "épique",
  "drama",
  "𝔉ancy",
  "quiet",
  "ünïcode",
  "😀",
  "tab\there",
  'q"uote',
  "back\\slash",
];

/**
 * Seeded random writer of rental-shop transactions. Deletes never rely on a cascade: an
 * application that lets MySQL cascade loses those child changes in the binlog (documented);
 * here children go first, so the cascades have nothing left to do.
 */
export class RentalWriter {
  readonly #rand: () => number;
  #nextId = 1_000_000;
  #films: number[] = [];
  #customers: number[] = [];
  #addresses: number[] = [];
  #rentals: number[] = [];
  #payments: number[] = [];
  #stopping = false;
  #running: Promise<void> | null = null;
  transactions = 0;

  constructor(private readonly conn: () => Conn, seed: number, private readonly pauseMs = 2) {
    this.#rand = prng(seed);
  }

  #pick<T>(list: T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.#rand() * list.length)];
  }

  #text(words: number): string {
    return Array.from({ length: words }, () => this.#pick(WORDS)!).join(" ");
  }

  #bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.#rand() * 256);
    return b;
  }

  #features(): string {
    return FEATURES.filter(() => this.#rand() < 0.4).join(",");
  }

  #when(): string {
    const ms = Date.UTC(2020, 0, 1) + Math.floor(this.#rand() * 5 * 365 * 86_400_000);
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
  }

  /** Rows that exist before the writer starts: `seed` films, customers, rentals. */
  async seed(size: number): Promise<void> {
    const c = this.conn();
    await c.query(
      "INSERT INTO language (language_id, name) VALUES (1, 'English'), (2, 'Français')",
    );
    for (let i = 1; i <= size; i++) {
      await this.#insertAddress(c, i);
      await this.#insertFilm(c, i, i % 50 === 0);
      await this.#insertCustomer(c, i, i);
    }
    for (let i = 1; i <= size * 2; i++) await this.#insertRental(c, i);
    await c.query(
      "INSERT INTO film_note VALUES (1, 'first note', '2024-01-01 00:00:00.001'), " +
        "(1, 'first note', '2024-01-01 00:00:00.001'), (2, 'dup-free', '2024-01-02 00:00:00')",
    );
  }

  async #insertAddress(c: Conn, id: number) {
    await c.query(
      "INSERT INTO address (address_id, address, district, postal_code, phone, location, flags) " +
        "VALUES (?, ?, ?, ?, ?, ST_PointFromText(?), ?)",
      [
        id,
        `${id} ${this.#text(2)} St`.slice(0, 50),
        this.#rand() < 0.2 ? null : this.#text(1).slice(0, 20),
        String(10000 + id),
        `+1-555-${id}`,
        `POINT(${(this.#rand() * 360 - 180).toFixed(6)} ${(this.#rand() * 180 - 90).toFixed(6)})`,
        Math.floor(this.#rand() * 256),
      ],
    );
    this.#addresses.push(id);
  }

  async #insertFilm(c: Conn, id: number, big: boolean) {
    await c.query(
      "INSERT INTO film (film_id, title, description, long_description, release_year, " +
        "language_id, rental_rate, length, rating, special_features, metadata, poster) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [
        id,
        `${this.#text(3)} ${id}`.slice(0, 128),
        this.#text(12),
        // A few large values (TOAST-size in PostgreSQL terms): up to ~1 MB.
        big ? this.#text(1).repeat(60_000 + Math.floor(this.#rand() * 40_000)) : null,
        1990 + Math.floor(this.#rand() * 40),
        1 + Math.floor(this.#rand() * 2),
        (Math.floor(this.#rand() * 999) / 100).toFixed(2),
        this.#rand() < 0.1 ? null : 60 + Math.floor(this.#rand() * 120),
        this.#pick(RATINGS),
        this.#features(),
        JSON.stringify({
          tags: [this.#text(1), id],
          score: this.#rand() * 10,
          nested: { ok: true },
        }),
        big ? this.#bytes(200_000) : this.#bytes(16),
      ],
    );
    this.#films.push(id);
  }

  async #insertCustomer(c: Conn, id: number, address: number) {
    await c.query(
      "INSERT INTO customer VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      [
        id,
        this.#text(1).slice(0, 45),
        `Last${id}`,
        this.#rand() < 0.2 ? null : `c${id}@example.org`,
        address,
        this.#rand() < 0.8 ? 1 : 0,
        // BIGINT UNSIGNED beyond 2^53 for some.
        this.#rand() < 0.3 ? (18446744073709551615n - BigInt(id)).toString() : String(id * 7),
        `${this.#when()}.${String(Math.floor(this.#rand() * 1e6)).padStart(6, "0")}`,
      ],
    );
    this.#customers.push(id);
  }

  async #insertRental(c: Conn, id: number) {
    const film = this.#pick(this.#films)!;
    const customer = this.#pick(this.#customers)!;
    await c.query(
      "INSERT INTO rental (rental_id, rental_date, film_id, customer_id) VALUES (?, ?, ?, ?)",
      [id, this.#when(), film, customer],
    );
    this.#rentals.push(id);
    const pid = id;
    await c.query(
      "INSERT INTO payment (payment_id, customer_id, rental_id, amount) VALUES (?, ?, ?, ?)",
      [pid, customer, id, (Math.floor(this.#rand() * 1200) / 100).toFixed(2)],
    );
    this.#payments.push(pid);
  }

  /** One transaction of the shop's kinds of work. */
  async step(): Promise<void> {
    const c = this.conn();
    await c.query("BEGIN");
    try {
      const dice = this.#rand();
      if (dice < 0.3) {
        await this.#insertRental(c, this.#nextId++);
      } else if (dice < 0.45) {
        const r = this.#pick(this.#rentals);
        if (r !== undefined) {
          await c.query("UPDATE rental SET return_date = ? WHERE rental_id = ?", [this.#when(), r]);
        }
      } else if (dice < 0.55) {
        const f = this.#pick(this.#films);
        if (f !== undefined) {
          await c.query(
            "UPDATE film SET rating = ?, special_features = ?, description = ?, " +
              "metadata = JSON_SET(metadata, '$.score', ?), title = ? WHERE film_id = ?",
            [
              this.#pick(RATINGS),
              this.#features(),
              this.#text(10),
              this.#rand() * 10,
              `${this.#text(2)} ${f}`,
              f,
            ],
          );
        }
      } else if (dice < 0.62) {
        const cu = this.#pick(this.#customers);
        if (cu !== undefined) {
          await c.query(
            "UPDATE customer SET email = ?, active = NOT active, loyalty = loyalty + 1 " +
              "WHERE customer_id = ? AND loyalty < 18446744073709551615",
            [`n${this.#nextId++}@example.org`, cu],
          );
        }
      } else if (dice < 0.68) {
        // A new customer at a new address, renting at once.
        const a = this.#nextId++;
        await this.#insertAddress(c, a);
        const cu = this.#nextId++;
        await this.#insertCustomer(c, cu, a);
        await this.#insertRental(c, this.#nextId++);
      } else if (dice < 0.74) {
        // A rental undone: its payment first (no SET NULL cascade), then the rental.
        const r = this.#pick(this.#rentals);
        if (r !== undefined) {
          await c.query("DELETE FROM payment WHERE rental_id = ?", [r]);
          await c.query("DELETE FROM rental WHERE rental_id = ?", [r]);
          this.#rentals = this.#rentals.filter((x) => x !== r);
          this.#payments = this.#payments.filter((x) => x !== r);
        }
      } else if (dice < 0.78) {
        // A customer leaves: payments and rentals first, so no cascade fires.
        const cu = this.#pick(this.#customers);
        if (cu !== undefined && this.#customers.length > 5) {
          const [rs] = await c.query("SELECT rental_id FROM rental WHERE customer_id = ?", [cu]);
          const gone = new Set((rs as { rental_id: number }[]).map((x) => Number(x.rental_id)));
          await c.query(
            "DELETE FROM payment WHERE customer_id = ? OR rental_id IN " +
              "(SELECT rental_id FROM rental WHERE customer_id = ?)",
            [cu, cu],
          );
          await c.query("DELETE FROM rental WHERE customer_id = ?", [cu]);
          await c.query("DELETE FROM customer WHERE customer_id = ?", [cu]);
          this.#customers = this.#customers.filter((x) => x !== cu);
          this.#rentals = this.#rentals.filter((x) => !gone.has(x));
        }
      } else if (dice < 0.84) {
        const a = this.#pick(this.#addresses);
        if (a !== undefined) {
          await c.query(
            "UPDATE address SET location = ST_PointFromText(?), flags = ?, phone = ? " +
              "WHERE address_id = ?",
            [
              `POINT(${(this.#rand() * 10).toFixed(3)} ${(this.#rand() * 10).toFixed(3)})`,
              Math.floor(this.#rand() * 256),
              `+33-${this.#nextId++}`,
              a,
            ],
          );
        }
      } else if (dice < 0.9) {
        const f = this.#pick(this.#films);
        if (f !== undefined) {
          await c.query("INSERT INTO film_note VALUES (?, ?, NOW(3))", [
            f,
            `${this.#text(3)} #${this.#nextId++}`,
          ]);
        }
      } else if (dice < 0.93) {
        // Keyless: one of several notes goes, or changes.
        if (this.#rand() < 0.5) await c.query("DELETE FROM film_note ORDER BY noted_at LIMIT 1");
        else {
          await c.query(
            "UPDATE film_note SET note = CONCAT(note, ' (edited)') ORDER BY noted_at DESC LIMIT 1",
          );
        }
      } else if (dice < 0.96) {
        const f = this.#nextId++ % 60_000;
        if (!this.#films.includes(f)) await this.#insertFilm(c, f, this.#rand() < 0.1);
      } else {
        // A large value rewritten.
        const f = this.#pick(this.#films);
        if (f !== undefined) {
          await c.query("UPDATE film SET long_description = ?, poster = ? WHERE film_id = ?", [
            this.#text(1).repeat(50_000),
            this.#bytes(100_000),
            f,
          ]);
        }
      }
      await c.query("COMMIT");
      this.transactions++;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }

  start(): void {
    this.#stopping = false;
    this.#running = (async () => {
      while (!this.#stopping) {
        await this.step();
        if (this.pauseMs) await sleep(this.pauseMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
  }

  /**
   * A last change in every table, in one transaction, to know when realtime has all; gives
   * the transaction's GTID.
   */
  async marker(token: string): Promise<string> {
    const c = this.conn();
    await c.query("BEGIN");
    const id = this.#nextId++;
    await c.query("INSERT INTO language (language_id, name) VALUES (?, ?)", [3 + (id % 200), token])
      .catch(() => c.query("UPDATE language SET name = ? WHERE language_id = 1", [token]));
    await c.query("UPDATE film SET title = ? WHERE film_id = ?", [token, this.#films[0]]);
    await c.query("UPDATE address SET phone = ? WHERE address_id = ?", [token, this.#addresses[0]]);
    await c.query("UPDATE customer SET last_name = ? WHERE customer_id = ?", [
      token,
      this.#customers[0],
    ]);
    await this.#insertRental(c, id);
    await c.query("INSERT INTO film_note VALUES (?, ?, NOW(3))", [this.#films[0], token]);
    await c.query("COMMIT");
    const [rows] = await c.query("SELECT @@last_gtid AS g");
    return String((rows as { g: string }[])[0].g);
  }
}

// ------------------------------------------------------------------ reading the source

const GEOMETRY = 255;

/** A non-negative integer as the entries write it: a number within 2^53, else its digits. */
function integer(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/**
 * Every row of a table as the entries must show it, read independently of Replicant:
 * integers as numbers (strings beyond 2^53), DECIMAL as its text, DATETIME with `T`,
 * TIMESTAMP with `T` and `Z`, BIT as a number, BLOB and POINT as base64, JSON as its text.
 */
export async function expectedRows(
  db: Conn,
  database: string,
  table: string,
): Promise<Record<string, unknown>[]> {
  const [rows, fields] = await db.query({
    sql: `SELECT * FROM \`${database}\`.\`${table}\``,
    typeCast: ((field: { type: string; buffer(): Buffer | null }, next: () => unknown) => {
      if (field.type === "BIT") {
        const b = field.buffer();
        return b === null ? null : b.reduce((v, x) => v * 256 + x, 0);
      }
      if (field.type === "GEOMETRY" || /BLOB$/.test(field.type)) return field.buffer();
      return next();
    }) as never,
  }) as unknown as [
    Record<string, unknown>[],
    { name: string; columnType: number; flags: number; characterSet: number }[],
  ];
  return rows.map((row) => {
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      let v = row[f.name];
      const type = f.columnType;
      if (v === null || v === undefined) v = null;
      else if (Buffer.isBuffer(v)) {
        // Binary (charset 63) as base64; text blobs (TEXT, JSON as LONGTEXT) as text.
        v = f.characterSet === 63 || type === GEOMETRY ? v.toString("base64") : v.toString("utf8");
      } else if (type === 7 /* TIMESTAMP */) v = String(v).replace(" ", "T") + "Z";
      else if (type === 12 /* DATETIME */) v = String(v).replace(" ", "T");
      else if ([1, 2, 3, 8, 9, 13].includes(type)) v = integer(String(v));
      out[f.name] = v;
    }
    return out;
  });
}
