import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import {
  availableCodecs,
  NativeCore,
  NativeLibraryMissingError,
  parseNativeLogLine,
  SETUP_COMMAND,
  STATUS,
} from "./native_abi.ts";

Deno.test("a missing library is a clear error naming the setup command", () => {
  const error = assertThrows(() => NativeCore.open("/nonexistent/libpunktfunk_native.so"));
  assert(error instanceof NativeLibraryMissingError);
  assert(error.message.includes(SETUP_COMMAND));
  assert(error.message.includes("/nonexistent/libpunktfunk_native.so"));
});

Deno.test("native core: ABI version, and a panic inside an export becomes a status + message", () => {
  const native = NativeCore.open();
  try {
    assertEquals(native.abiVersion, 1);
    const error = native.debugPanic();
    assertEquals(error.status, STATUS.PANIC);
    assertMatch(error.message, /panic/i);
    // The library still works after the panic.
    assertEquals(native.abiVersion, 1);
    native.setLogLevel("info");
  } finally {
    native.close();
  }
});

Deno.test("native core: the encoder probe opens software H.264 and gives a reason for every failure", async () => {
  const native = NativeCore.open();
  try {
    native.setLogLevel("debug");
    const report = await native.probeEncoders(1280, 720);
    assertEquals([report.width, report.height], [1280, 720]);
    assertEquals(report.encoders.length, 10);
    const x264 = report.encoders.find((e) => e.encoder === "libx264");
    assert(x264?.available, `libx264 should open: ${x264?.reason}`);
    assertEquals(x264.codec, "h264");
    assertEquals(x264.backend, "software");
    for (const probe of report.encoders) {
      if (!probe.available) {
        assert(probe.reason && probe.reason.length > 0, `${probe.encoder} needs a reason`);
      }
    }
    const hasGpu = (() => {
      try {
        Deno.statSync("/dev/dri/renderD128");
        return true;
      } catch {
        return false;
      }
    })();
    if (!hasGpu) {
      const vaapiBuiltIn = report.encoders.filter((e) =>
        e.backend === "vaapi" && !/not built/.test(e.reason ?? "")
      );
      assert(vaapiBuiltIn.length > 0, "Debian's libavcodec has VAAPI encoders");
      for (const probe of vaapiBuiltIn) {
        assertEquals(probe.available, false);
        assertMatch(probe.reason!, /renderD128/);
      }
    }
    assert(availableCodecs(report).includes("h264"));
    const records = native.drainLogs();
    assert(records.length > 0, "probing logs at debug level");
    for (const record of records) assertMatch(record.target, /^native::/);
    assertEquals(native.drainLogs(), [], "drained records are gone");
  } finally {
    native.setLogLevel("info");
    native.close();
  }
});

Deno.test("native core: impossible sizes are refused", async () => {
  const native = NativeCore.open();
  try {
    let refused = false;
    try {
      await native.probeEncoders(0, 720);
    } catch {
      refused = true;
    }
    assert(refused);
  } finally {
    native.close();
  }
});

Deno.test("native log lines parse; garbage becomes a warning, never a throw", () => {
  const record = parseNativeLogLine('{"t_ms":5,"level":"warn","target":"encode","msg":"x \\"y\\""}');
  assertEquals(record, { timeMs: 5, level: "warn", target: "native::encode", msg: 'x "y"' });
  assertEquals(parseNativeLogLine("{not json").level, "warn");
  assertEquals(parseNativeLogLine('{"level":"shout","msg":1}').level, "info");
});

Deno.test("availableCodecs maps hevc to the API's h265 and keeps API order", () => {
  const probe = (codec: "h264" | "hevc" | "av1", available: boolean) => ({
    codec,
    backend: "software" as const,
    encoder: codec,
    available,
    reason: available ? null : "no",
  });
  assertEquals(
    availableCodecs({
      width: 1,
      height: 1,
      encoders: [probe("av1", true), probe("hevc", true), probe("h264", false)],
    }),
    ["h265", "av1"],
  );
});

Deno.test("ffiCalls counts every crossing, log drains and error reads included", () => {
  const native = NativeCore.open();
  try {
    const crossings = (action: () => unknown) => {
      const before = native.ffiCalls;
      action();
      return native.ffiCalls - before;
    };
    native.drainLogs();
    assertEquals(crossings(() => native.drainLogs()), 1, "an empty log queue: one drain call");
    // A length query, and a second call to copy the message when there is one.
    const expected = native.lastError() === "" ? 1 : 2;
    assertEquals(crossings(() => native.lastError()), expected, "an error read");
    assertEquals(crossings(() => native.setLogLevel("info")), 1);
  } finally {
    native.close();
  }
});
