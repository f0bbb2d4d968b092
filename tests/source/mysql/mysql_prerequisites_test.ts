import assert from "node:assert/strict";
import { granted, parseGrants } from "../../../src/source/mysql/mysql_prerequisites.ts";

Deno.test("SHOW GRANTS: scopes, wildcards, column lists, MariaDB's names", () => {
  const grants = parseGrants([
    "GRANT USAGE ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*x'",
    "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`",
    "GRANT SELECT ON `tpch`.`orders` TO `cdc`@`%`",
    "GRANT SELECT (a, b), INSERT ON `tpch`.`lineitem` TO `cdc`@`%`",
    "GRANT ALL PRIVILEGES ON `app\\_%`.* TO `cdc`@`%`",
    "GRANT `reader` TO `cdc`@`%`",
  ]);
  assert.ok(granted(grants, "REPLICATION SLAVE"));
  assert.ok(granted(grants, "REPLICATION CLIENT"), "BINLOG MONITOR counts");
  assert.ok(!granted(grants, "RELOAD"));
  assert.ok(granted(grants, "SELECT", "tpch", "orders"));
  assert.ok(!granted(grants, "SELECT", "tpch", "nation"));
  assert.ok(!granted(grants, "SELECT", "tpch", "lineitem"), "column-level only");
  assert.ok(granted(grants, "INSERT", "tpch", "lineitem"));
  assert.ok(granted(grants, "CREATE TEMPORARY TABLES", "app_eu"));
  assert.ok(!granted(grants, "CREATE TEMPORARY TABLES", "appxeu"), "\\_ is a literal _");
  assert.ok(granted(parseGrants(["GRANT ALL ON *.* TO `root`@`localhost`"]), "RELOAD"));
});
