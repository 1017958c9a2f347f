import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import fc from "fast-check";
import { escapeControlCharacters, formatRecord, isLoggedOccurrence, Logger, parseLogLevel } from "./log.ts";
import type { LogLevel } from "./log.ts";

function capture(level: LogLevel, format: "human" | "json" = "json") {
  const lines: string[] = [];
  return { lines, log: new Logger("root", { level, format, sink: (line) => lines.push(line) }) };
}

Deno.test("levels filter and children share configuration", () => {
  const { lines, log } = capture("warn");
  const child = log.child("mgmt");
  log.info("hidden");
  child.warn("shown", { port: 1 });
  log.error("also shown");
  assertEquals(lines.length, 2);
  assertEquals(JSON.parse(lines[0]).target, "mgmt");
  log.configure({ level: "debug" });
  child.debug("now visible");
  assertEquals(lines.length, 3);
  log.configure({ level: "off" });
  log.error("silenced");
  assertEquals(lines.length, 3);
});

Deno.test("json format is one parseable object per line with fields flattened", () => {
  const { lines, log } = capture("info");
  log.info('multi\nline "quoted"', { fingerprint: "ab", count: 3 });
  assertEquals(lines.length, 1);
  assert(!lines[0].includes("\n"));
  const parsed = JSON.parse(lines[0]);
  assertEquals([parsed.level, parsed.msg, parsed.fingerprint, parsed.count], [
    "info",
    'multi\nline "quoted"',
    "ab",
    3,
  ]);
  assertMatch(parsed.t, /^\d{4}-\d\d-\d\dT/);
});

Deno.test("human format is readable: time, level, target, message, key=value", () => {
  const line = formatRecord(
    { timeMs: 0, level: "warn", target: "x", msg: "hi", fields: { a: "b c", n: 1 } },
    "human",
  );
  assertEquals(line, '00:00:00.000 WARN  x: hi a="b c" n=1');
});

Deno.test("parseLogLevel accepts known levels in any case", () => {
  assertEquals(parseLogLevel(" DEBUG "), "debug");
  assertThrows(() => parseLogLevel("verbose"), /unknown log level/);
});

/** Anything that ends a line, steers a terminal or reorders text (mirrors the logger's list). */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
/** Strings rich in the characters that matter: controls, separators, quotes, backslashes, `=`. */
const hostileString = fc.string({
  unit: fc.oneof(
    fc.constantFrom("\n", "\r", "\t", "\u001b", "\u0000", "\u007f", "\u0085", "\u009b", "\u2028", "\u202e"),
    fc.constantFrom("\\", '"', "=", " ", "a", "é", "😀"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 40,
});

Deno.test("human format escapes control characters in message, target, keys and values", () => {
  const line = formatRecord(
    {
      timeMs: 0,
      level: "info",
      target: "t\x1b[2J",
      msg: "user typed\nFAKE 00:00:00.000 ERROR forged\u2028\u009b31m",
      fields: { "k\r": "v\u0007", path: "C:\\x", nested: { s: "\u0085" } },
    },
    "human",
  );
  assertEquals(
    line,
    "00:00:00.000 INFO  t\\u001b[2J: user typed\\nFAKE 00:00:00.000 ERROR forged\\u2028\\u009b31m " +
      'k\\r="v\\u0007" path="C:\\\\x" nested={"s":"\\u0085"}',
  );
});

Deno.test("property: a human log line is one inert line, and every string in it can be recovered", () => {
  fc.assert(
    fc.property(hostileString, hostileString, hostileString, (msg, target, value) => {
      const line = formatRecord({ timeMs: 0, level: "info", target, msg, fields: { v: value } }, "human");
      assert(!UNSAFE.test(line), JSON.stringify(line));
      // The message and target read back as JSON string bodies; the value is bare or a JSON string.
      const unescape = (text: string) => JSON.parse(`"${text.replaceAll('"', '\\"')}"`);
      assertEquals(unescape(escapeControlCharacters(msg)), msg);
      assertEquals(unescape(escapeControlCharacters(target)), target);
      const formatted = line.slice(line.lastIndexOf(" v=") + 3);
      assertEquals(formatted.startsWith('"') ? JSON.parse(formatted) : formatted, value);
    }),
    { numRuns: 500 },
  );
});

Deno.test("isLoggedOccurrence: the 1st, 2nd, 4th, 8th … occurrence, never 0 or the others", () => {
  const logged = Array.from({ length: 40 }, (_, i) => i).filter(isLoggedOccurrence);
  assertEquals(logged, [1, 2, 4, 8, 16, 32]);
});
