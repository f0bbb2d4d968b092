import assert from "node:assert/strict";
import { canonicalJson, objectMembers, payloadText, valueEnd } from "../../src/core/raw_json.ts";
import { decodeRawEntry } from "../../src/core/entry_decoder.ts";

Deno.test("raw JSON: values kept as written (big integers, decimals, escapes, nesting)", () => {
  const text =
    '{"id":12345678901234567890,"d":1.50,"s":"a\\"b\\\\c}","n":null,"o":{"x":[1,{"y":"]"}]},"e":"\\u00e9"}';
  assert.deepEqual(objectMembers(text), [
    ["id", "12345678901234567890"],
    ["d", "1.50"],
    ["s", '"a\\"b\\\\c}"'],
    ["n", "null"],
    ["o", '{"x":[1,{"y":"]"}]}'],
    ["e", '"\\u00e9"'],
  ]);
  assert.equal(valueEnd('[1,"]",[2]] tail', 0), 11);
  assert.deepEqual(objectMembers('{"we\\"ird":1}'), [['we"ird', "1"]]);
  assert.deepEqual(objectMembers("{}"), []);
});

Deno.test("raw JSON: payload of a schema-wrapped key or value; canonical form", () => {
  const wrapped = '{"schema":{"type":"struct","fields":[{"field":"payload"}]},"payload":{"id":1}}';
  assert.equal(payloadText(wrapped), '{"id":1}');
  assert.equal(payloadText('{"id":1}'), '{"id":1}');
  assert.equal(
    canonicalJson('{"b":[1, {"d":2,"c":"\\u00e9"}],"a":1.0}'),
    '{"a":1.0,"b":[1,{"c":"é","d":2}]}',
  );
});

Deno.test("decodeRawEntry: compact, extended and fields; tombstones", () => {
  const value =
    '{"schema":{"type":"struct"},"payload":{"before":null,"after":{"id":1,"v":9007199254740993},"source":{"lsn":5},"op":"c","ts_ms":1}}';
  const key = '{"schema":{"type":"struct"},"payload":{"id":1}}';
  const expected = {
    op: "c",
    key: '{"id":1}',
    before: null,
    after: '{"id":1,"v":9007199254740993}',
    source: '{"lsn":5}',
  };
  assert.deepEqual(decodeRawEntry([key, value], "compact"), expected);
  assert.deepEqual(decodeRawEntry(["key", key, "value", value], "extended"), expected);
  assert.deepEqual(decodeRawEntry([key, "default"], "compact").op, "tombstone");
  assert.deepEqual(
    decodeRawEntry(
      [
        "op",
        "d",
        "table",
        "db.t",
        "key",
        '{"id":1}',
        "before",
        '{"id":1}',
        "after",
        "null",
        "source",
        "{}",
        "ts_ms",
        "1",
      ],
      "fields",
    ),
    { op: "d", key: '{"id":1}', before: '{"id":1}', after: null, source: "{}", table: "db.t" },
  );
});
