import { assertEquals, assertMatch } from "../tests/assert.ts";
import { describeSpeed } from "./selftest.ts";
import type { EncoderSpeed } from "./codec_speed.ts";

const result: EncoderSpeed = {
  codec: "av1",
  encoder: "libsvtav1",
  width: 1280,
  height: 720,
  fps: 60,
  backend: "software",
  speed: "fastest",
  throughput_fps: 61.04,
  paced_fps: 59.6,
  latency_ms: { p50: 55.1, p90: 70.25, max: 90 },
  frames_held: 3,
  cpu_ms_per_frame: 30,
  frames: 135,
};

Deno.test("selftest speed lines say what was measured, when, and under what load", () => {
  assertEquals(
    describeSpeed({ result, measuredAtUnix: 1_796_380_000, load1: 3.4 }, false),
    "libsvtav1 fastest: 61.0 fps max, 59.6 fps paced, latency p50 55.1 / p90 70.3 ms, 3 frame(s) held " +
      "(cached from 2026-12-04 10:26 UTC, load 3.4)",
  );
  const now = describeSpeed({
    result: { ...result, frames_held: 0, truncated: true },
    measuredAtUnix: 0,
    load1: -1,
  }, true);
  assertMatch(now, /ms, stopped at the time cap \(measured now, load \?\)$/);
});
