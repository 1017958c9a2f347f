import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import fc from "fast-check";
import { parseVideoFault, TestFaultError } from "./test_fault.ts";

Deno.test("test video fault: unset and empty mean none; valid objects pass through", () => {
  assertEquals(parseVideoFault(undefined), null);
  assertEquals(parseVideoFault("  "), null);
  assertEquals(parseVideoFault("{}"), null);
  assertEquals(parseVideoFault('{"fail_encoder_after_frames":120}'), { fail_encoder_after_frames: 120 });
  assertEquals(parseVideoFault('{"kill_worker_after_frames":1,"fail_encoder_after_frames":2}'), {
    kill_worker_after_frames: 1,
    fail_encoder_after_frames: 2,
  });
});

Deno.test("test video fault: bad values are refused with the reason", () => {
  for (
    const [text, needle] of [
      ["{", "not JSON"],
      ["[1]", "JSON object"],
      ["null", "JSON object"],
      ['{"explode":1}', 'unknown fault "explode"'],
      ['{"kill_worker_after_frames":0}', "integer from 1"],
      ['{"kill_worker_after_frames":1.5}', "integer from 1"],
      ['{"fail_encoder_after_frames":"3"}', "integer from 1"],
    ]
  ) {
    const error = assertThrows(() => parseVideoFault(text));
    assert(error instanceof TestFaultError, `${text}: ${error}`);
    assert(error.message.includes(needle), `${text}: ${error.message}`);
  }
});

Deno.test("test video fault: arbitrary text gives a fault or a TestFaultError, nothing else", () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
    try {
      const fault = parseVideoFault(text);
      if (fault !== null) assertEquals(typeof fault, "object");
    } catch (error) {
      if (!(error instanceof TestFaultError)) throw error;
    }
  }));
});
