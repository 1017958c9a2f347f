import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import { formatRecord, Logger, parseLogLevel } from "./log.ts";
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
