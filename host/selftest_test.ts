import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import { startXvfb, XVFB, XVFB_SKIP_REASON } from "../tests/xvfb.ts";
import type { SelftestItem } from "./selftest.ts";
import { describeSpeed, runSelftest, x11CaptureProbe, xtestProbe } from "./selftest.ts";
import type { EncoderSpeed } from "./codec_speed.ts";

async function probes(display: string | undefined): Promise<[SelftestItem, SelftestItem]> {
  const env = display === undefined ? {} : { DISPLAY: display };
  return [await x11CaptureProbe(env), await xtestProbe(env)];
}

Deno.test("selftest: without a display X11 capture and XTest say why; uinput is not implemented", async () => {
  for (const item of await probes(undefined)) {
    assertEquals(item.ok, false);
    assertMatch(item.detail, /DISPLAY is not set/);
  }
  for (const item of await probes("remote:0")) {
    assertEquals(item.ok, false);
    assertMatch(item.detail, /not a local display/);
  }
  const configDir = Deno.makeTempDirSync({ prefix: "punktfunk-selftest-" });
  const sections = await runSelftest({ DISPLAY: "", PUNKTFUNK_CONFIG_DIR: configDir }).finally(() =>
    Deno.removeSync(configDir, { recursive: true })
  );
  const input = sections.find((s) => s.title === "input backends")!.items;
  assertEquals(input.find((i) => i.name.startsWith("uinput")), {
    name: "uinput (gamepads)",
    ok: false,
    detail: "no, not implemented",
  });
});

Deno.test("selftest: a display number with no server behind it is a no, not a yes from a socket path", async () => {
  // :65010 has no socket; the probe opens the display instead of looking for a file.
  for (const item of await probes(":65010")) {
    assertEquals(item.ok, false, item.detail);
    assertMatch(item.detail, /cannot open display :65010/);
  }
});

Deno.test({
  name: `selftest: a real X server is probed: capture size and XTEST${XVFB_SKIP_REASON}`,
  ignore: XVFB === null,
  fn: async () => {
    const xvfb = await startXvfb({ size: "800x600" });
    try {
      const [capture, xtest] = await probes(xvfb.display);
      assertEquals(capture, {
        name: "x11",
        ok: true,
        detail: `display ${xvfb.display} opens, MIT-SHM capture at 800x600`,
      });
      assertEquals(xtest, {
        name: "xtest (keyboard/mouse)",
        ok: true,
        detail: `display ${xvfb.display} opens, XTEST present (800x600)`,
      });
    } finally {
      await xvfb.stop();
    }
  },
});

Deno.test({
  name: `selftest: a server without XTEST is a no for input with the reason${XVFB_SKIP_REASON}`,
  ignore: XVFB === null,
  fn: async () => {
    const xvfb = await startXvfb({ extra: ["-tst"] });
    try {
      const [capture, xtest] = await probes(xvfb.display);
      assert(capture.ok, capture.detail);
      assertEquals(xtest.ok, false);
      assertMatch(xtest.detail, /does not offer the XTEST extension/);
    } finally {
      await xvfb.stop();
    }
  },
});

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
