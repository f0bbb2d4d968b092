import assert from "node:assert/strict";
import type { SlotInfo } from "../../../src/source/postgres/pg_replication_slot.ts";
import { pgSlotGap } from "../../../src/source/postgres/pg_slot_gap.ts";
import { OwnershipError } from "../../../src/core/errors.ts";
import {
  assertOwnPublication,
  judgeOwnership,
  ownerComment,
  parseOwnerComment,
} from "../../../src/source/postgres/pg_source_ownership.ts";

function slot(confirmed: bigint | null, walStatus: string | null = "reserved"): SlotInfo {
  return {
    plugin: "pgoutput",
    active: false,
    activePid: null,
    confirmedFlushLsn: confirmed,
    restartLsn: confirmed,
    walStatus,
  };
}

// A checkpoint at commit LSN 0x1000: the slot must still deliver from 0x1001 on.
const needed = { from: 0x1001n, what: "LSN 0/1000 (commit of the last transaction written)" };

Deno.test("slot gap: a slot at or behind the checkpoint delivers everything after it", () => {
  assert.equal(pgSlotGap("s", needed, slot(0x1001n)), null, "confirmed right after the commit");
  assert.equal(pgSlotGap("s", needed, slot(0x900n)), null, "acknowledgement not yet through");
  assert.equal(pgSlotGap("s", needed, slot(null)), null);
  assert.equal(
    pgSlotGap("s", needed, slot(0x1001n), { expected: "71", actual: "71" }),
    null,
    "same server",
  );
});

Deno.test("slot gap: moved past the checkpoint, missing, invalidated, another server", () => {
  const moved = pgSlotGap("s", needed, slot(0x1002n));
  assert.ok(moved);
  assert.match(moved.reason, /moved past the checkpoint/);
  assert.match(moved.available, /0\/1002 .*confirmed_flush_lsn of slot "s"/);
  assert.equal(moved.checkpoint, needed.what);

  const missing = pgSlotGap("s", needed, null);
  assert.match(missing!.available, /slot "s" does not exist/);

  const lost = pgSlotGap("s", needed, slot(0x900n, "lost"));
  assert.match(lost!.reason, /max_slot_wal_keep_size/);

  // Another server comes first: its slot (if any) says nothing about the checkpoint.
  const other = pgSlotGap("s", needed, slot(0x900n), { expected: "71", actual: "72" });
  assert.match(other!.reason, /another PostgreSQL server/);
  assert.match(other!.checkpoint, /system identifier 71/);
  assert.match(other!.available, /system identifier 72/);
});

Deno.test("ownership: the publication comment names the owning group/id", () => {
  const me = { group: "default", id: "demo" };
  assert.equal(ownerComment(me), "replicant default/demo");
  assert.deepEqual(parseOwnerComment("replicant g.1/my-id_2"), { group: "g.1", id: "my-id_2" });
  assert.equal(parseOwnerComment("owned by the app"), null);
  assert.equal(parseOwnerComment(null), null);

  const found = (slotDatabase: string | null, publication: boolean, comment: string | null) => ({
    slotDatabase,
    publication,
    comment,
  });
  assert.deepEqual(judgeOwnership(found(null, false, null), me, "db"), { kind: "free" });
  assert.deepEqual(
    judgeOwnership(found("db", true, "replicant default/demo"), me, "db"),
    { kind: "own" },
  );
  assert.deepEqual(
    judgeOwnership(found(null, true, "replicant default/demo"), me, "db"),
    { kind: "own" },
    "own publication, slot gone",
  );
  assert.deepEqual(
    judgeOwnership(found("db", true, "replicant default/other"), me, "db"),
    { kind: "other", owner: { group: "default", id: "other" } },
  );
  assert.equal(judgeOwnership(found("db", false, null), me, "db").kind, "unknown");
  assert.equal(judgeOwnership(found("db", true, null), me, "db").kind, "unknown");
  assert.equal(judgeOwnership(found(null, true, "app"), me, "db").kind, "unknown");
  assert.equal(
    judgeOwnership(found("otherdb", true, "replicant default/demo"), me, "db").kind,
    "unknown",
    "a slot of another database is never this id's",
  );
});

Deno.test("ownership: a publication is changed only when its comment names this id", () => {
  const me = { group: "default", id: "demo" };
  assertOwnPublication("p", "replicant default/demo", me);
  assert.throws(
    () => assertOwnPublication("p", "replicant default/other", me),
    (err) =>
      err instanceof OwnershipError && err.exitCode === 2 && err.owner === "default/other" &&
      /belongs to replication default\/other, not to default\/demo/.test(err.message),
  );
  assert.throws(
    () => assertOwnPublication("p", null, me),
    (err) =>
      err instanceof OwnershipError && err.owner === null &&
      err.message.includes(`claim it: COMMENT ON PUBLICATION "p" IS 'replicant default/demo'`),
  );
});
