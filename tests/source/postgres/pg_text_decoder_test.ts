import assert from "node:assert/strict";
import {
  type JsonFragmentDecoder,
  pgTextDecoder,
} from "../../../src/source/postgres/pg_text_decoder.ts";
import {
  PG_TYPE_CATALOG_SQL,
  PgTypeCatalog,
} from "../../../src/source/postgres/pg_type_catalog.ts";

const catalog = new PgTypeCatalog();

// User types as pg_type would describe them.
const MOOD = 90001; // enum
const MOOD_ARRAY = 90002;
const BIG_ID = 90003; // domain over int8
const BIG_ID_ARRAY = 90004;
const BIG_ID2 = 90005; // domain over the domain
const INT_LIST = 90006; // domain over int4[]
const ADDRESS = 90007; // composite
const ADDRESS_ARRAY = 90008;
catalog.add({ oid: MOOD, name: "mood", category: "E", elementOid: 0, baseOid: 0 });
catalog.add({ oid: MOOD_ARRAY, name: "_mood", category: "A", elementOid: MOOD, baseOid: 0 });
catalog.loadRows([
  { oid: "90003", typname: "big_id", typcategory: "N", typelem: "0", typbasetype: "20" },
  { oid: 90004, typname: "_big_id", typcategory: "A", typelem: 90003, typbasetype: 0 },
  {
    oid: "90005",
    typname: "big_id2",
    typcategory: "N",
    typelem: "0",
    typbasetype: "90003",
    typdelim: ",",
  },
  { oid: "90006", typname: "int_list", typcategory: "A", typelem: "0", typbasetype: "1007" },
  { oid: "90007", typname: "address", typcategory: "C", typelem: "0", typbasetype: "0" },
  { oid: "90008", typname: "_address", typcategory: "A", typelem: "90007", typbasetype: "0" },
]);

const OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int2vector: 22,
  int4: 23,
  text: 25,
  oid: 26,
  oidvector: 30,
  json: 114,
  xml: 142,
  point: 600,
  box: 603,
  cidr: 650,
  float4: 700,
  float8: 701,
  money: 790,
  macaddr: 829,
  inet: 869,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  bit: 1560,
  varbit: 1562,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  int4range: 3904,
  _bool: 1000,
  _bytea: 1001,
  _int2vector: 1006,
  _int4: 1007,
  _text: 1009,
  _varchar: 1015,
  _int8: 1016,
  _box: 1020,
  _float8: 1022,
  _point: 1017,
  _date: 1182,
  _timestamptz: 1185,
  _numeric: 1231,
  _json: 199,
  _uuid: 2951,
  _jsonb: 3807,
  _int4range: 3905,
} as const;

/** Decodes, checks that the fragment is valid JSON, and returns both. */
function dec(oid: number, text: string | null): { json: string; value: unknown } {
  const json = pgTextDecoder(oid, catalog)(text);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new Error(`oid ${oid}: ${JSON.stringify(text)} → invalid JSON ${json}: ${e}`);
  }
  return { json, value };
}

function fragment(oid: number, text: string | null): string {
  return dec(oid, text).json;
}

function value(oid: number, text: string | null): unknown {
  return dec(oid, text).value;
}

Deno.test("NULL is null for every type", () => {
  for (const oid of [...Object.values(OID), MOOD, MOOD_ARRAY, BIG_ID, ADDRESS, 424242]) {
    assert.equal(fragment(oid, null), "null", `oid ${oid}`);
  }
});

Deno.test("int2, int4, oid are numbers as printed", () => {
  assert.equal(fragment(OID.int2, "-32768"), "-32768");
  assert.equal(fragment(OID.int2, "32767"), "32767");
  assert.equal(fragment(OID.int4, "-2147483648"), "-2147483648");
  assert.equal(fragment(OID.int4, "0"), "0");
  assert.equal(fragment(OID.oid, "4294967295"), "4294967295");
});

Deno.test("int8 is a number within ±(2^53-1), an exact string beyond", () => {
  const cases: Array<[string, string]> = [
    ["0", "0"],
    ["-1", "-1"],
    ["999999999999999", "999999999999999"], // 15 digits
    ["1000000000000000", "1000000000000000"], // 16 digits, small
    ["9007199254740991", "9007199254740991"], // 2^53-1
    ["-9007199254740991", "-9007199254740991"],
    ["9007199254740992", '"9007199254740992"'], // 2^53
    ["-9007199254740992", '"-9007199254740992"'],
    ["9007199254740993", '"9007199254740993"'],
    ["9099999999999999", '"9099999999999999"'],
    ["10000000000000000", '"10000000000000000"'], // 17 digits
    ["9223372036854775807", '"9223372036854775807"'],
    ["-9223372036854775808", '"-9223372036854775808"'],
  ];
  for (const [text, want] of cases) {
    assert.equal(fragment(OID.int8, text), want, text);
    const v = value(OID.int8, text);
    if (typeof v === "number") {
      assert.ok(Number.isSafeInteger(v), text);
      assert.equal(String(v), text);
    } else {
      assert.equal(v, text);
      assert.ok(!Number.isSafeInteger(Number(text)), text);
    }
  }
});

Deno.test("domains decode as their base type, also through domains and arrays", () => {
  assert.equal(fragment(BIG_ID, "42"), "42");
  assert.equal(fragment(BIG_ID, "9223372036854775807"), '"9223372036854775807"');
  assert.equal(fragment(BIG_ID2, "-9223372036854775808"), '"-9223372036854775808"');
  assert.equal(fragment(BIG_ID_ARRAY, "{1,9007199254740992,NULL}"), '[1,"9007199254740992",null]');
  assert.equal(fragment(INT_LIST, "{1,2}"), "[1,2]");
});

Deno.test("numeric is a string of the exact text", () => {
  for (
    const t of [
      "0",
      "12345.6789000",
      "-0.000000000000000000000000000001",
      "123456789012345678901234567890.123456789",
      "NaN",
      "Infinity",
      "-Infinity",
    ]
  ) {
    assert.equal(fragment(OID.numeric, t), '"' + t + '"');
    assert.equal(value(OID.numeric, t), t);
  }
});

Deno.test("float4/float8 are numbers, NaN and infinities strings", () => {
  const numbers = [
    "0",
    "-0",
    "1.5",
    "0.1",
    "1e+30",
    "1e-07",
    "-1.2345678901234567e-300",
    "1.7976931348623157e+308",
    "5e-324",
    "3.4028235e+38",
    "1e-45",
    "123456789",
  ];
  for (const oid of [OID.float4, OID.float8]) {
    for (const t of numbers) {
      assert.equal(fragment(oid, t), t);
      assert.equal(value(oid, t), Number(t));
    }
    assert.ok(Object.is(value(oid, "-0"), -0));
    for (const t of ["NaN", "Infinity", "-Infinity"]) {
      assert.equal(fragment(oid, t), '"' + t + '"');
      assert.equal(value(oid, t), t);
    }
  }
});

Deno.test("bool", () => {
  assert.equal(fragment(OID.bool, "t"), "true");
  assert.equal(fragment(OID.bool, "f"), "false");
});

Deno.test("text-like types are escaped JSON strings", () => {
  const tricky = [
    "",
    "plain",
    'quote " inside',
    "back\\slash",
    "new\nline\r\ttab",
    "unicode ☃ ünïcödé 😀 中文",
    "\u0001\u001f control",
    "  padded  ",
    "NULL",
    "null",
    "{1,2}",
    "</script>\u2028\u2029",
  ];
  for (const oid of [OID.text, OID.varchar, OID.bpchar, OID.name, OID.xml, MOOD, 424242]) {
    for (const t of tricky) assert.equal(value(oid, t), t, `oid ${oid} ${JSON.stringify(t)}`);
  }
  assert.equal(value(OID.char, "a"), "a");
  assert.equal(value(OID.char, "\\001"), "\\001");
  assert.equal(value(OID.money, "$1,234.56"), "$1,234.56");
  assert.equal(value(OID.money, "-$92,233,720,368,547,758.08"), "-$92,233,720,368,547,758.08");
  assert.equal(
    value(OID.uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
  );
  assert.equal(value(OID.inet, "2001:db8::1/64"), "2001:db8::1/64");
  assert.equal(value(OID.cidr, "10.0.0.0/8"), "10.0.0.0/8");
  assert.equal(value(OID.macaddr, "08:00:2b:01:02:03"), "08:00:2b:01:02:03");
  assert.equal(value(OID.bit, "10101010"), "10101010");
  assert.equal(value(OID.varbit, ""), "");
  assert.equal(value(OID.point, "(1.5,-2)"), "(1.5,-2)");
  assert.equal(value(OID.int4range, "[1,10)"), "[1,10)");
  assert.equal(value(ADDRESS, '(1,"a ""b"" \\\\ c")'), '(1,"a ""b"" \\\\ c")');
});

Deno.test("bytea hex is base64; escape format too", () => {
  assert.equal(fragment(OID.bytea, "\\x"), '""');
  assert.equal(value(OID.bytea, "\\x00ff10"), "AP8Q");
  assert.equal(value(OID.bytea, "\\x68656c6c6f"), btoa("hello"));
  const all = new Uint8Array(256).map((_, i) => i);
  const hex = Array.from(all, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(value(OID.bytea, "\\x" + hex), btoa(String.fromCharCode(...all)));
  assert.equal(value(OID.bytea, "ab\\\\c\\000\\377"), btoa("ab\\c\x00\xff"));
  // Every length around the short-value loop / native boundary, every remainder.
  for (let len = 0; len <= 200; len++) {
    const bytes = new Uint8Array(len).map((_, i) => (i * 37 + len) & 255);
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    const want = btoa(String.fromCharCode(...bytes));
    assert.equal(value(OID.bytea, "\\x" + hex), want, `length ${len}`);
    assert.equal(value(OID.bytea, "\\x" + hex.toUpperCase()), want, `length ${len}, upper`);
  }
});

Deno.test("date, time, timetz, interval are PostgreSQL's text as strings", () => {
  for (
    const t of [
      "2024-01-31",
      "0001-01-01",
      "0044-03-15 BC",
      "4713-01-01 BC",
      "infinity",
      "-infinity",
    ]
  ) {
    assert.equal(value(OID.date, t), t);
  }
  for (const t of ["13:45:00", "13:45:00.123456", "00:00:00", "24:00:00"]) {
    assert.equal(value(OID.time, t), t);
  }
  for (const t of ["13:45:00+02", "13:45:00.5+05:30", "00:00:00-03:30:15", "24:00:00-15:59"]) {
    assert.equal(value(OID.timetz, t), t);
  }
  for (const t of ["P1Y2M3DT4H5M6.5S", "PT0S", "P-1Y-2M3DT-4H-5M-6.5S", "PT-0.000001S"]) {
    assert.equal(value(OID.interval, t), t);
  }
});

Deno.test("timestamp: space becomes T", () => {
  const cases: Array<[string, string]> = [
    ["2024-01-31 13:45:00.123456", "2024-01-31T13:45:00.123456"],
    ["2024-01-31 13:45:00", "2024-01-31T13:45:00"],
    ["0044-03-15 13:45:00.5 BC", "0044-03-15T13:45:00.5 BC"],
    ["10000-01-01 00:00:00", "10000-01-01T00:00:00"],
    ["294276-12-31 23:59:59.999999", "294276-12-31T23:59:59.999999"],
    ["infinity", "infinity"],
    ["-infinity", "-infinity"],
  ];
  for (const [text, want] of cases) assert.equal(value(OID.timestamp, text), want);
});

Deno.test("timestamptz: ISO with Z in UTC", () => {
  const cases: Array<[string, string]> = [
    ["2024-01-31 13:45:00.123456+00", "2024-01-31T13:45:00.123456Z"],
    ["2024-01-31 13:45:00+00", "2024-01-31T13:45:00Z"],
    ["1970-01-01 00:00:00+00", "1970-01-01T00:00:00Z"],
    ["0044-03-15 13:45:00.5+00 BC", "0044-03-15T13:45:00.5Z BC"],
    ["10000-01-01 00:00:00+00", "10000-01-01T00:00:00Z"],
    ["infinity", "infinity"],
    ["-infinity", "-infinity"],
    // Sessions not in UTC keep their offset, as ±HH:MM.
    ["2024-01-31 15:45:00+02", "2024-01-31T15:45:00+02:00"],
    ["2024-01-31 08:15:00.5-05:30", "2024-01-31T08:15:00.5-05:30"],
    ["1900-01-01 00:00:00-03:30:15", "1900-01-01T00:00:00-03:30:15"],
    ["0044-03-15 13:45:00-01 BC", "0044-03-15T13:45:00-01:00 BC"],
  ];
  for (const [text, want] of cases) assert.equal(value(OID.timestamptz, text), want, text);
  // Everything but the BC and infinity forms is parseable by Date and means the same instant.
  assert.equal(
    new Date(value(OID.timestamptz, "2024-01-31 13:45:00.123+00") as string).toISOString(),
    "2024-01-31T13:45:00.123Z",
  );
  assert.equal(
    new Date(value(OID.timestamptz, "2024-01-31 15:45:00+02") as string).toISOString(),
    "2024-01-31T13:45:00.000Z",
  );
});

Deno.test("json and jsonb are strings holding the JSON text exactly", () => {
  for (
    const t of [
      '{"a": 1, "b": [true, null, "x"]}',
      "12345678901234567890123456789",
      '"just a string"',
      "null",
      "[]",
      '{"big": 9223372036854775808, "s": "\\"q\\" \\\\ \\u00e9 \\n"}',
      '  {"json": "keeps whitespace"}  ',
    ]
  ) {
    assert.equal(fragment(OID.json, t), JSON.stringify(t));
    assert.equal(fragment(OID.jsonb, t), JSON.stringify(t));
  }
  // A JSON null value is not SQL NULL: the text "null".
  assert.equal(fragment(OID.jsonb, "null"), '"null"');
  assert.equal(fragment(OID.jsonb, null), "null");
});

Deno.test("arrays of numbers, 1-D and nested, with NULLs and bounds", () => {
  assert.equal(fragment(OID._int4, "{1,2,NULL}"), "[1,2,null]");
  assert.equal(fragment(OID._int4, "{}"), "[]");
  assert.equal(fragment(OID._int4, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
  assert.equal(fragment(OID._int4, "{{{1},{2}},{{3},{NULL}}}"), "[[[1],[2]],[[3],[null]]]");
  assert.equal(fragment(OID._int4, "[0:2]={1,2,3}"), "[1,2,3]");
  assert.equal(fragment(OID._int4, "[-5:-4]={1,2}"), "[1,2]");
  assert.equal(fragment(OID._int4, "[0:1][1:2]={{1,2},{3,4}}"), "[[1,2],[3,4]]");
  assert.equal(
    fragment(OID._int8, "{9007199254740991,9007199254740992,-9223372036854775808,NULL}"),
    '[9007199254740991,"9007199254740992","-9223372036854775808",null]',
  );
  assert.equal(
    fragment(OID._numeric, "{1.50,NaN,-Infinity,NULL,123456789012345678901234567890}"),
    '["1.50","NaN","-Infinity",null,"123456789012345678901234567890"]',
  );
  assert.equal(
    fragment(OID._float8, "{1.5,NaN,Infinity,-Infinity,-0,1e+30}"),
    '[1.5,"NaN","Infinity","-Infinity",-0,1e+30]',
  );
  assert.equal(fragment(OID._bool, "{t,f,NULL}"), "[true,false,null]");
});

Deno.test('arrays of strings: quoting, escapes, NULL vs "NULL"', () => {
  // What array_out prints for ARRAY['a b','c"d',NULL,'NULL','x\y','',' ','{}','nulL',…].
  const text =
    '{"a b","c\\"d",NULL,"NULL","x\\\\y",""," ","{}","nulL",plain,"line\nbreak","tab\there",' +
    '"comma,inside","☃ 😀","\\\\\\"",",","\\\\"}';
  assert.deepEqual(value(OID._text, text), [
    "a b",
    'c"d',
    null,
    "NULL",
    "x\\y",
    "",
    " ",
    "{}",
    "nulL",
    "plain",
    "line\nbreak",
    "tab\there",
    "comma,inside",
    "☃ 😀",
    '\\"',
    ",",
    "\\",
  ]);
  assert.deepEqual(value(OID._varchar, '{{a,NULL},{"b c",d}}'), [["a", null], ["b c", "d"]]);
  assert.deepEqual(value(OID._text, "{null,Null}"), [null, null]); // array_in accepts any case
  assert.deepEqual(value(OID._text, '{""}'), [""]);
  assert.deepEqual(value(OID._text, "{a\\,b}"), ["a,b"]); // unquoted escapes (array_in form)
  assert.deepEqual(value(MOOD_ARRAY, '{happy,NULL,"sad face"}'), ["happy", null, "sad face"]);
  assert.deepEqual(value(OID._uuid, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), [
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
  ]);
  assert.deepEqual(value(OID._date, '{2024-01-31,"0044-03-15 BC",infinity}'), [
    "2024-01-31",
    "0044-03-15 BC",
    "infinity",
  ]);
  assert.deepEqual(value(ADDRESS_ARRAY, '{"(1,\\"a b\\")",NULL}'), ['(1,"a b")', null]);
  assert.deepEqual(value(OID._int4range, '{"[1,3)",empty}'), ["[1,3)", "empty"]);
});

Deno.test("arrays of bytea, timestamptz, json, jsonb decode each element", () => {
  assert.deepEqual(value(OID._bytea, '{"\\\\x00ff",NULL,"\\\\x"}'), ["AP8=", null, ""]);
  assert.deepEqual(
    value(
      OID._timestamptz,
      '{"2024-01-31 13:45:00.5+00",NULL,infinity,"0044-03-15 00:00:00+00 BC"}',
    ),
    ["2024-01-31T13:45:00.5Z", null, "infinity", "0044-03-15T00:00:00Z BC"],
  );
  const jsonbArray = '{"{\\"a\\": 1}","\\"s\\"","null","[1, \\"x\\"]",NULL,' +
    '"{\\"big\\": 12345678901234567890}"}';
  const texts = ['{"a": 1}', '"s"', "null", '[1, "x"]', null, '{"big": 12345678901234567890}'];
  const want = JSON.stringify(texts);
  assert.equal(fragment(OID._jsonb, jsonbArray), want);
  assert.equal(fragment(OID._json, jsonbArray), want);
  assert.deepEqual(value(OID._jsonb, jsonbArray), texts);
  assert.equal(
    fragment(OID._jsonb, '{"\\"back\\\\\\\\slash\\""}'),
    JSON.stringify(['"back\\\\slash"']),
  );
});

Deno.test("box arrays use ';' as delimiter; geometric elements stay strings", () => {
  assert.deepEqual(value(OID._box, "{(3,4),(1,2);(1,1),(0,0)}"), ["(3,4),(1,2)", "(1,1),(0,0)"]);
  assert.deepEqual(value(OID._point, '{"(1,2)",NULL}'), ["(1,2)", null]);
});

Deno.test("int2vector and oidvector are arrays of numbers", () => {
  assert.equal(fragment(OID.int2vector, "1 2 3"), "[1,2,3]");
  assert.equal(fragment(OID.int2vector, ""), "[]");
  assert.equal(fragment(OID.oidvector, "23 4294967295"), "[23,4294967295]");
  assert.deepEqual(value(OID._int2vector, '{"1 2","3",NULL}'), [[1, 2], [3], null]);
});

Deno.test("malformed array literals throw", () => {
  assert.throws(() => pgTextDecoder(OID._text, catalog)('{"unterminated}'), /malformed/);
  assert.throws(() => pgTextDecoder(OID._int4, catalog)("{{1,2}"), /malformed/);
  assert.throws(() => pgTextDecoder(OID._int4, catalog)("1,2"), /malformed/);
  assert.throws(() => pgTextDecoder(OID._int4, catalog)("[1:2]{1,2}"), /malformed/);
});

Deno.test("decoders are chosen once and reused", () => {
  const d: JsonFragmentDecoder = pgTextDecoder(OID.int8, catalog);
  assert.equal(d("1"), "1");
  assert.equal(d("9223372036854775807"), '"9223372036854775807"');
  assert.equal(pgTextDecoder(OID.int8, catalog), pgTextDecoder(BIG_ID, catalog));
});

Deno.test("catalog: built-ins, arrays derived, user rows loaded", () => {
  const c = new PgTypeCatalog();
  assert.deepEqual(c.get(1007), {
    oid: 1007,
    name: "_int4",
    category: "A",
    elementOid: 23,
    baseOid: 0,
  });
  assert.equal(c.get(603)?.delimiter, ";");
  for (
    const [array, element] of [
      [1000, 16],
      [1001, 17],
      [1009, 25],
      [1015, 1043],
      [1016, 20],
      [1022, 701],
      [1182, 1082],
      [1185, 1184],
      [1231, 1700],
      [2951, 2950],
      [3807, 3802],
      [199, 114],
      [1041, 869],
      [651, 650],
      [1040, 829],
    ]
  ) {
    assert.equal(c.get(array)?.category, "A", String(array));
    assert.equal(c.get(array)?.elementOid, element, String(array));
  }
  assert.equal(c.has(90001), false);
  c.loadRows([{
    oid: "90001",
    typname: "mood",
    typcategory: "E",
    typelem: "0",
    typbasetype: "0",
    typdelim: ",",
  }]);
  assert.deepEqual(c.get(90001), {
    oid: 90001,
    name: "mood",
    category: "E",
    elementOid: 0,
    baseOid: 0,
  });
  assert.throws(
    () => c.loadRows([{ oid: "x", typname: "y", typcategory: "U", typelem: 0, typbasetype: 0 }]),
    /not an OID/,
  );
  assert.match(PG_TYPE_CATALOG_SQL, /FROM pg_catalog\.pg_type/);
});

Deno.test("every fragment is valid JSON (mixed sample)", () => {
  const samples: Array<[number, string]> = [
    [OID.text, "\u007f del and \ud83d\ude00 surrogate pair"],
    [OID.float8, "-1.5e-10"],
    [OID._text, '{"\\"",NULL,"\\\\"}'],
    [OID._int4, "{}"],
    [OID.timestamptz, "2000-02-29 23:59:59.999999+00"],
  ];
  for (const [oid, t] of samples) dec(oid, t);
});
