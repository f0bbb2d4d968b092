import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadValidate } from "../../src/commands/test_connection_command.ts";

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "replicant-validate-")), "validate.yaml");
  writeFileSync(path, text);
  return path;
}

Deno.test("--validate: Arcion's keys; SNAPSHOT turns the CDC checks off by default", () => {
  assert.deepEqual(loadValidate(undefined), {
    endPointType: null,
    mode: "FULL",
    systemTables: true,
    cdcLogs: true,
    ddlDml: true,
  });
  assert.deepEqual(
    loadValidate(file("end-point-type: SRC\nmode: SNAPSHOT\nvalidate-ddl-dml-permission: false\n")),
    { endPointType: "SRC", mode: "SNAPSHOT", systemTables: true, cdcLogs: false, ddlDml: false },
  );
});

Deno.test("--validate: unknown keys and bad values are usage errors naming them", () => {
  assert.throws(
    () => loadValidate(file("mode: DELTA\nvalidate-cdc: true\n")),
    (e: Error & { exitCode?: number }) =>
      e.exitCode === 2 && /validate-cdc/.test(e.message) && /`mode`/.test(e.message),
  );
});
