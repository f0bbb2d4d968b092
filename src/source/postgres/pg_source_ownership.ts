/**
 * Who owns a replication slot and its publication (same name), and which server they are on.
 *
 * A slot belongs to exactly one replication (`group/id`). The owner is recorded on the source
 * as the comment of the publication Replicant created with the slot (`replicant
 * <group>/<id>`), which needs only ownership of that publication and which the application
 * never sees; so any id, whatever Redis it writes to, can name the owner of a slot it finds.
 * Replicant uses, drops or recreates a slot only when it is this id's own.
 *
 * @module
 */

import pg from "pg";
import { OwnershipError, SourceError } from "../../core/errors.ts";
import { type PgEndpoint, quoteIdent } from "./pg_endpoint.ts";
import {
  defaultSlotName,
  dropPublication,
  dropSlot,
  replicationClientConfig,
} from "./pg_replication_slot.ts";

/** A replication: its group and id. */
export interface ReplicationOwner {
  group: string;
  id: string;
}

export function ownerLabel(owner: ReplicationOwner): string {
  return `${owner.group}/${owner.id}`;
}

/** The publication comment that records the owner. */
export function ownerComment(owner: ReplicationOwner): string {
  return `replicant ${ownerLabel(owner)}`;
}

/** The owner a publication comment names, or null when it is not Replicant's. */
export function parseOwnerComment(comment: string | null): ReplicationOwner | null {
  const m = /^replicant ([A-Za-z0-9][A-Za-z0-9_.-]*)\/([A-Za-z0-9][A-Za-z0-9_.-]*)$/.exec(
    comment?.trim() ?? "",
  );
  return m ? { group: m[1], id: m[2] } : null;
}

/** What the source holds under a slot name. */
export interface PgResourcesFound {
  /** The slot's database, or null when there is no slot of this name. */
  slotDatabase: string | null;
  publication: boolean;
  /** The publication's comment (null: none, or no publication). */
  comment: string | null;
}

export async function readPgResources(
  client: pg.Client,
  name: string,
): Promise<PgResourcesFound> {
  const slot = await client.query({
    text: "SELECT database::text FROM pg_replication_slots WHERE slot_name = $1",
    values: [name],
    rowMode: "array",
  });
  const pub = await client.query({
    text: "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1",
    values: [name],
    rowMode: "array",
  });
  return {
    slotDatabase: slot.rows.length > 0 ? String(slot.rows[0][0] ?? "") : null,
    publication: pub.rows.length > 0,
    comment: pub.rows.length > 0 ? (pub.rows[0][0] as string | null) : null,
  };
}

/** Whose the slot (and publication) of a name are, from what the source holds. */
export type PgOwnership =
  | { kind: "free" }
  | { kind: "own" }
  | { kind: "other"; owner: ReplicationOwner }
  | { kind: "unknown"; why: string };

export function judgeOwnership(
  found: PgResourcesFound,
  me: ReplicationOwner,
  database: string,
): PgOwnership {
  if (found.slotDatabase !== null && found.slotDatabase !== database) {
    return {
      kind: "unknown",
      why: `it is a slot of database "${found.slotDatabase}" (slot names are server-wide)`,
    };
  }
  if (found.slotDatabase === null && !found.publication) return { kind: "free" };
  const owner = parseOwnerComment(found.comment);
  if (owner) {
    return owner.group === me.group && owner.id === me.id ? { kind: "own" } : {
      kind: "other",
      owner,
    };
  }
  return {
    kind: "unknown",
    why: found.publication
      ? "its publication carries no Replicant owner"
      : "Replicant did not create it (it has no publication recording an owner)",
  };
}

export interface OwnershipCheck {
  /** Slot and publication name. */
  name: string;
  me: ReplicationOwner;
  database: string;
  /** The id has state in Redis (it resumes or starts over). */
  hasState: boolean;
  /**
   * A new run may use this id's own slot as it finds it (realtime: made ahead of the first
   * run, for this id); `full` may not: it makes its slot anew, with an exported snapshot.
   */
  reuseOwn: boolean;
  /** `--overwrite`: this id's own slot and publication may be dropped and made anew. */
  overwrite: boolean;
  /** The connection file, where a per-id slot name goes. */
  connectionFile: string;
  /** Where the id's state is kept (for messages). */
  stateKey: string;
}

/**
 * Stops (OwnershipError, exit 2) unless the slot and publication of `name` are free or this
 * id's own, and, when they are its own but the id has no state, unless it starts over.
 * Returns whether this id's own slot or publication exists.
 */
export async function checkPgOwnership(client: pg.Client, c: OwnershipCheck): Promise<boolean> {
  const found = await readPgResources(client, c.name);
  const verdict = judgeOwnership(found, c.me, c.database);
  const fix = `Give each replication id its own slot: in ${c.connectionFile}, set ` +
    `\`replication-slots\` to a name for this id (e.g. ${
      JSON.stringify(defaultSlotName(c.me.group, c.me.id))
    }), or remove it to use that per-id name.`;
  switch (verdict.kind) {
    case "free":
      return false;
    case "own":
      // Only its publication (made ahead, claimed for this id): a full run makes the slot.
      if (c.hasState || c.overwrite || c.reuseOwn || found.slotDatabase === null) return true;
      throw new OwnershipError(
        `Replication slot "${c.name}" belongs to this id (${ownerLabel(c.me)}), but the id has ` +
          `no state (${c.stateKey}), and a full run makes its slot anew with an exported ` +
          `snapshot. Start over with --overwrite (drops and recreates this id's slot and ` +
          `publication), or use another slot name.`,
        c.name,
        ownerLabel(c.me),
      );
    case "other":
      throw new OwnershipError(
        `Replication slot "${c.name}" and its publication belong to replication ${
          ownerLabel(verdict.owner)
        }, not to ${ownerLabel(c.me)}: Replicant never uses, drops or recreates another ` +
          `id's slot (the other id would lose changes). Nothing was changed. ${fix}`,
        c.name,
        ownerLabel(verdict.owner),
      );
    case "unknown": {
      // A slot of another database is not this one's to claim.
      const claim = found.publication &&
          (found.slotDatabase === null || found.slotDatabase === c.database)
        ? ` If it was made for this id (by a DBA, or by a Replicant that did not record ` +
          `owners), claim it: ${ownerCommentStatement(c.name, c.me)}.`
        : "";
      const what = found.slotDatabase === null
        ? `A publication named "${c.name}"`
        : `Replication slot "${c.name}"`;
      throw new OwnershipError(
        `${what} exists but belongs to nobody Replicant knows: ${verdict.why}. It may be ` +
          `another consumer's, so Replicant neither uses nor drops it. Nothing was changed. ` +
          fix + claim,
        c.name,
        null,
      );
    }
  }
}

/** The statement that records `owner` on publication `name` (run with its creation). */
export function ownerCommentStatement(name: string, owner: ReplicationOwner): string {
  return `COMMENT ON PUBLICATION ${quoteIdent(name)} IS ${quoteLiteral(ownerComment(owner))}`;
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Stops (OwnershipError) before an existing publication is changed unless its comment names
 * `owner`: a publication of another id, or of nobody Replicant knows, is never rewritten (two
 * ids sharing a name would otherwise keep replacing each other's tables).
 */
export function assertOwnPublication(
  name: string,
  comment: string | null,
  owner: ReplicationOwner,
): void {
  const found = parseOwnerComment(comment);
  if (found && found.group === owner.group && found.id === owner.id) return;
  const whose = found
    ? `belongs to replication ${ownerLabel(found)}`
    : "belongs to nobody Replicant knows (its comment names no Replicant owner)";
  throw new OwnershipError(
    `Publication "${name}" ${whose}, not to ${ownerLabel(owner)}: Replicant never changes ` +
      `another replication's publication. Nothing was changed. Give each replication id its ` +
      `own slot and publication name (\`replication-slots\` in the connection file)` +
      (found
        ? "."
        : `, or, if it was made for this id, claim it: ${ownerCommentStatement(name, owner)}.`),
    name,
    found ? ownerLabel(found) : null,
  );
}

/** `--overwrite`: drops this id's own slot and publication (checked by checkPgOwnership). */
export async function releaseOwnResources(client: pg.Client, name: string): Promise<void> {
  await dropSlot(client, name);
  await dropPublication(client, name);
}

/**
 * The server's system identifier (`IDENTIFY_SYSTEM` on a replication connection): the same
 * for a server and its physical copies, different for any other server. It tells whether a
 * checkpoint's LSNs mean anything on the server now behind the connection file.
 */
export async function pgSystemIdentifier(endpoint: PgEndpoint): Promise<string> {
  const client = new pg.Client({
    ...replicationClientConfig(endpoint, "replicant-identify"),
    replication: "database",
  } as pg.ClientConfig);
  client.on("error", () => {/* surfaced by the query */});
  try {
    await client.connect();
    const res = await client.query("IDENTIFY_SYSTEM");
    return String((res.rows[0] as Record<string, unknown>).systemid);
  } catch (err) {
    throw new SourceError(
      `Cannot identify the PostgreSQL server at ${endpoint.host}:${endpoint.port} ` +
        `(${endpoint.origin}) on a replication connection: ${(err as Error).message} ` +
        `(the user needs the REPLICATION attribute)`,
      undefined,
      { cause: err },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/** The identity recorded in the checkpoint: `postgresql:<system identifier>`. */
export function pgServerIdentity(systemIdentifier: string): string {
  return `postgresql:${systemIdentifier}`;
}
