import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { decodePgoutput } from "../../../src/source/postgres/pgoutput_decoder.ts";
import {
  compareLsn,
  formatLsn,
  parseLsn,
  pgPositionFields,
  pgSortKey,
  pgSortKeyOfSource,
} from "../../../src/source/postgres/pgoutput_position.ts";

Deno.test("LSNs parse from any padding and compare as numbers", () => {
  assert.equal(parseLsn("0/1528A70"), 0x1528a70n);
  assert.equal(parseLsn("00000000/01528A70"), 0x1528a70n);
  assert.equal(parseLsn("1/0"), 1n << 32n);
  assert.equal(formatLsn(parseLsn("00000001/000000FF")), "1/FF");
  assert.equal(formatLsn(0n), "0/0");
  assert.equal(compareLsn("00000000/01528A70", "0/1528A70"), 0);
  assert.equal(compareLsn("0/FFFFFFFF", "1/0"), -1);
  assert.equal(compareLsn("0/9", "0/10"), -1, "text order would say otherwise");
  assert.throws(() => parseLsn("nope"), /not a PostgreSQL LSN/);
});

Deno.test("sort keys are fixed width and order like (commit LSN, sequence)", () => {
  const k = pgSortKey(0x1528a70n, 7);
  assert.equal(k, "0000000001528A700000000007");
  assert.equal(k.length, 26);
  const keys = [
    pgSortKey(parseLsn("1/0"), 0),
    pgSortKey(parseLsn("0/FFFFFFFF"), 2_000_000),
    pgSortKey(parseLsn("0/FFFFFFFF"), 9),
    pgSortKey(parseLsn("0/10"), 0),
  ];
  assert.deepEqual([...keys].sort(), [keys[3], keys[2], keys[1], keys[0]]);
  assert.equal(pgPositionFields(0x10n, 7, 3), '"lsn":16,"txId":7,"sequence":3');
});

Deno.test("sort key of a decoded source block", () => {
  assert.equal(pgSortKeyOfSource({ lsn: 16, txId: 1, sequence: 3 }), pgSortKey(16n, 3));
  assert.equal(pgSortKeyOfSource({ lsn: "16", sequence: 3 }), pgSortKey(16n, 3));
  assert.equal(pgSortKeyOfSource({ snapshot: "true" }), null);
  assert.equal(pgSortKeyOfSource(null), null);
});

function msg(...parts: (number[] | string | Buffer)[]): Buffer {
  return Buffer.concat(
    parts.map((p) =>
      typeof p === "string" ? Buffer.from(p + "\0") : Buffer.isBuffer(p) ? p : Buffer.from(p)
    ),
  );
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};

Deno.test("pgoutput decoder keeps text, NULL and unchanged TOAST apart", () => {
  const begin = decodePgoutput(msg([0x42], u64(0x1528a70n), u64(0n), u32(42)));
  assert.deepEqual(begin, {
    tag: "begin",
    finalLsn: 0x1528a70n,
    commitTimeMs: 946_684_800_000,
    xid: 42,
  });
  const rel = decodePgoutput(
    msg(
      [0x52],
      u32(16500),
      "public",
      "t",
      [0x64],
      [0, 2],
      [1],
      "id",
      u32(23),
      u32(0xffffffff),
      [
        0,
      ],
      "v",
      u32(25),
      u32(0xffffffff),
    ),
  );
  assert.equal(rel.tag, "relation");
  if (rel.tag === "relation") {
    assert.deepEqual(rel.columns.map((c) => [c.name, c.flags, c.typeOid]), [["id", 1, 23], [
      "v",
      0,
      25,
    ]]);
  }
  const upd = decodePgoutput(
    msg([0x55], u32(16500), [0x4e], [0, 2], [0x74], u32(2), Buffer.from("é"), [0x75]),
  );
  assert.equal(upd.tag, "update");
  if (upd.tag === "update") assert.deepEqual(upd.new.values(), ["é", undefined]);
  const ins = decodePgoutput(
    msg([0x49], u32(16500), [0x4e], [0, 2], [0x6e], [0x74], u32(1), Buffer.from("x")),
  );
  if (ins.tag === "insert") assert.deepEqual(ins.new.values(), [null, "x"]);
  const commit = decodePgoutput(msg([0x43, 0], u64(0x10n), u64(0x20n), u64(1000n)));
  assert.deepEqual(commit, {
    tag: "commit",
    commitLsn: 0x10n,
    endLsn: 0x20n,
    commitTimeMs: 946_684_800_001,
  });
});
