import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import {
  ADVERTISE_MODE,
  CodecAdvertiser,
  decideCodecs,
  holdsMode,
  measuredUnderLoad,
  parseCpuModel,
  parseEncoderLibraries,
  parseLoad1,
  SpeedCache,
} from "./codec_speed.ts";
import type { EncoderSpeed, MachineKey, MeasuredSpeed, VideoCodec } from "./codec_speed.ts";
import type { EncoderProbe, EncoderProbeReport, NativeCore } from "./native_abi.ts";
import { StateDb } from "./state_db.ts";
import { Logger } from "./log.ts";

function probe(available: string[]): EncoderProbeReport {
  const all: [EncoderProbe["codec"], EncoderProbe["backend"], string][] = [
    ["h264", "nvenc", "h264_nvenc"],
    ["h264", "software", "libx264"],
    ["hevc", "vaapi", "hevc_vaapi"],
    ["hevc", "software", "libx265"],
    ["av1", "software", "libsvtav1"],
    ["av1", "software", "libaom-av1"],
  ];
  return {
    width: 1280,
    height: 720,
    encoders: all.map(([codec, backend, encoder]) => ({
      codec,
      backend,
      encoder,
      available: available.includes(encoder),
      reason: available.includes(encoder) ? null : "not here",
    })),
  };
}

/** A measurement at 720p60; the defaults describe an encoder that comfortably keeps up. */
function speed(codec: VideoCodec, encoder: string, overrides: Partial<EncoderSpeed> = {}): EncoderSpeed {
  return {
    codec,
    encoder,
    width: 1280,
    height: 720,
    fps: 60,
    backend: "software",
    speed: "fastest",
    throughput_fps: 80,
    paced_fps: 60,
    latency_ms: { p50: 12, p90: 15, max: 30 },
    frames_held: 0,
    cpu_ms_per_frame: 20,
    frames: 135,
    ...overrides,
  };
}

const at = (result: EncoderSpeed, load1 = 0.5): MeasuredSpeed => ({
  result,
  measuredAtUnix: 1_800_000_000,
  load1,
});

const SOFTWARE = probe(["libx264", "libx265", "libsvtav1", "libaom-av1"]);

function decide(speeds: [VideoCodec, MeasuredSpeed][], allowSlow = false, report = SOFTWARE) {
  const decisions = decideCodecs({ probe: report, speeds: new Map(speeds), mode: ADVERTISE_MODE, allowSlow });
  return Object.fromEntries(decisions.map((d) => [d.codec, d]));
}

Deno.test("holdsMode: headroom, pace and latency each decide, with the figures in the reason", () => {
  assertEquals(holdsMode(speed("hevc", "libx265")).holds, true);
  // 66 fps is exactly 1.1 × 60; 65.9 is not enough.
  assertEquals(holdsMode(speed("hevc", "libx265", { throughput_fps: 66 })).holds, true);
  const slow = holdsMode(speed("hevc", "libx265", { throughput_fps: 65.9 }));
  assertEquals(slow.holds, false);
  assertMatch(slow.reason, /encodes at most 65\.9 fps/);
  // 58.2 of 60 is the 97 % floor; 58.1 misses it.
  assertEquals(holdsMode(speed("hevc", "libx265", { paced_fps: 58.2 })).holds, true);
  assertMatch(holdsMode(speed("hevc", "libx265", { paced_fps: 58.1 })).reason, /delivers 58\.1 fps/);
  // 1.5 intervals at 60 fps is 25 ms.
  assertEquals(
    holdsMode(speed("hevc", "libx265", { latency_ms: { p50: 20, p90: 25, max: 40 } })).holds,
    true,
  );
  const laggy = holdsMode(
    speed("av1", "libsvtav1", { latency_ms: { p50: 60, p90: 70, max: 90 }, frames_held: 3 }),
  );
  assertEquals(laggy.holds, false);
  assertMatch(laggy.reason, /latency p90 70\.0 ms > 25\.0 ms, holds 3 frame/);
  // At 30 fps the budget doubles.
  const thirty = speed("hevc", "libx265", { fps: 30, throughput_fps: 40, paced_fps: 30 });
  assertEquals(holdsMode({ ...thirty, latency_ms: { p50: 40, p90: 49, max: 60 } }).holds, true);
});

Deno.test("decideCodecs: H.264 always, software HEVC/AV1 only when measured to hold the mode", () => {
  const none = decide([]);
  assertEquals(none.h264.advertised, true);
  assertEquals(none.h264.encoder, "libx264");
  assertEquals(none.hevc.advertised, false);
  assertMatch(none.hevc.reason, /not measured at 1280x720@60 yet/);
  assertEquals(none.av1.advertised, false);

  const measured = decide([
    ["hevc", at(speed("hevc", "libx265"))],
    ["av1", at(speed("av1", "libsvtav1", { throughput_fps: 30, paced_fps: 30 }))],
  ]);
  assertEquals(measured.hevc.advertised, true);
  assertMatch(measured.hevc.reason, /^holds 1280x720@60/);
  assertEquals(measured.av1.advertised, false);
  assertMatch(measured.av1.reason, /^cannot hold 1280x720@60/);
});

Deno.test("decideCodecs: a measurement of another encoder or mode does not count", () => {
  const otherEncoder = decide([["av1", at(speed("av1", "libaom-av1"))]]);
  assertEquals(otherEncoder.av1.encoder, "libsvtav1");
  assertEquals(otherEncoder.av1.advertised, false);
  const otherMode = decide([["hevc", at(speed("hevc", "libx265", { width: 1920, height: 1080 }))]]);
  assertEquals(otherMode.hevc.advertised, false);
});

Deno.test("decideCodecs: the explicit setting advertises slow and unmeasured codecs, marked slow", () => {
  const slow = decide([["hevc", at(speed("hevc", "libx265", { throughput_fps: 20, paced_fps: 20 }))]], true);
  assertEquals(slow.hevc.advertised, true);
  assertEquals(slow.hevc.slow, true);
  assertMatch(slow.hevc.reason, /slow codecs allowed/);
  assertEquals(slow.av1.advertised, true);
  assertEquals(slow.av1.slow, true);
  assertEquals(slow.h264.slow, false);
});

Deno.test("decideCodecs: hardware encoders are advertised without a figure; no encoder, no codec", () => {
  const hw = decide([], false, probe(["h264_nvenc", "libx264", "hevc_vaapi", "libx265"]));
  assertEquals(hw.h264.encoder, "h264_nvenc");
  assertEquals(hw.hevc.advertised, true);
  assertEquals(hw.hevc.encoder, "hevc_vaapi");
  assertMatch(hw.hevc.reason, /hardware encoder \(vaapi\)/);
  assertEquals(hw.av1.advertised, false);
  assertEquals(hw.av1.reason, "no encoder opens");
  const nothing = decide([], true, probe([]));
  assertEquals(Object.values(nothing).some((d) => d.advertised), false);
});

Deno.test("parsers: encoder libraries from /proc/self/maps, CPU model, load average", () => {
  const maps = [
    "7f1c0000-7f1c1000 r--p 00000000 08:01 1234   /usr/lib/x86_64-linux-gnu/libavcodec.so.59.37.100",
    "7f1c1000-7f1c2000 r-xp 00001000 08:01 1234   /usr/lib/x86_64-linux-gnu/libavcodec.so.59.37.100",
    "7f1d0000-7f1d1000 r--p 00000000 08:01 99     /usr/lib/x86_64-linux-gnu/libx265.so.199",
    "7f1e0000-7f1e1000 r--p 00000000 08:01 98     /usr/lib/x86_64-linux-gnu/libSvtAv1Enc.so.1.4.1",
    "7f1f0000-7f1f1000 r--p 00000000 08:01 97     /usr/lib/x86_64-linux-gnu/libssl.so.3",
    "7f200000-7f201000 rw-p 00000000 00:00 0      [heap]",
    "7f210000-7f211000 r--p 00000000 08:01 96     /opt/my libs/libx264.so.164",
    "",
  ].join("\n");
  assertEquals(parseEncoderLibraries(maps), [
    "/opt/my libs/libx264.so.164",
    "/usr/lib/x86_64-linux-gnu/libSvtAv1Enc.so.1.4.1",
    "/usr/lib/x86_64-linux-gnu/libavcodec.so.59.37.100",
    "/usr/lib/x86_64-linux-gnu/libx265.so.199",
  ]);
  assertEquals(parseEncoderLibraries("garbage\n\n"), []);
  assertEquals(
    parseCpuModel("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nmodel name\t: other\n"),
    "AMD EPYC 7B13",
  );
  assertEquals(parseCpuModel("processor : 0\n"), "unknown");
  assertEquals(parseLoad1("3.43 2.43 1.05 2/345 6789\n"), 3.43);
  assert(Number.isNaN(parseLoad1("")));
  assertEquals(measuredUnderLoad(at(speed("hevc", "libx265"), 1.9), 2), false);
  assertEquals(measuredUnderLoad(at(speed("hevc", "libx265"), 2.5), 2), true);
  assertEquals(
    measuredUnderLoad(at(speed("hevc", "libx265"), NaN), 2),
    true,
    "an unknown load is not trusted",
  );
});

function withDb(work: (db: StateDb) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync();
    const db = StateDb.open(`${dir}/state.db`);
    try {
      await work(db);
    } finally {
      db.close();
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

const MACHINE: MachineKey = { libraries: "libx265.so.199@100@1", cpuModel: "AMD EPYC", cores: 2 };

Deno.test(
  "SpeedCache: keyed by codec, encoder, mode and machine; replaced on re-measurement",
  withDb((db) => {
    const cache = new SpeedCache(db, MACHINE);
    assertEquals(cache.get("hevc", "libx265", ADVERTISE_MODE), undefined);
    cache.put(at(speed("hevc", "libx265", { throughput_fps: 50 })));
    assertEquals(cache.get("hevc", "libx265", ADVERTISE_MODE)?.result.throughput_fps, 50);
    assertEquals(cache.get("hevc", "libx265", { width: 1920, height: 1080, fps: 60 }), undefined);
    assertEquals(cache.get("av1", "libx265", ADVERTISE_MODE), undefined);
    for (const other of [{ ...MACHINE, libraries: "libx265.so.199@100@2" }, { ...MACHINE, cores: 4 }]) {
      assertEquals(new SpeedCache(db, other).get("hevc", "libx265", ADVERTISE_MODE), undefined);
    }
    cache.put(at(speed("hevc", "libx265", { throughput_fps: 70 }), 1.5));
    const again = cache.get("hevc", "libx265", ADVERTISE_MODE)!;
    assertEquals(again.result.throughput_fps, 70);
    assertEquals(again.load1, 1.5);
    assertEquals(db.all("SELECT * FROM encoder_speed").length, 1);
  }),
);

function fakeNative(figures: Record<string, Partial<EncoderSpeed>>, calls: string[]): NativeCore {
  return {
    bench: (name: string) => {
      calls.push(name);
      const [, codec] = name.split(":");
      const encoder = { h264: "libx264", hevc: "libx265", av1: "libsvtav1" }[codec as VideoCodec];
      return Promise.resolve(
        speed(codec as VideoCodec, encoder, figures[codec]) as unknown as Record<string, unknown>,
      );
    },
  } as unknown as NativeCore;
}

const quietLog = () => new Logger("test", { level: "off", format: "human", sink: () => {} });

Deno.test(
  "CodecAdvertiser: H.264 until measured, then the live flags follow; the cache spares the next start",
  withDb(async (db) => {
    const calls: string[] = [];
    const native = fakeNative({ av1: { latency_ms: { p50: 60, p90: 70, max: 80 }, frames_held: 3 } }, calls);
    const options = {
      native,
      cache: new SpeedCache(db, MACHINE),
      probe: SOFTWARE,
      cores: 2,
      allowSlow: false,
    };
    const advertiser = new CodecAdvertiser({ ...options, log: quietLog() });
    const support = advertiser.support;
    assertEquals([support.h264, support.hevc, support.av1], [true, false, false]);
    assertEquals(advertiser.toMeasure(), ["hevc", "av1"]);
    await advertiser.measureMissing();
    assertEquals(calls, ["encoder_speed:hevc:1280x720@60", "encoder_speed:av1:1280x720@60"]);
    assertEquals([support.h264, support.hevc, support.av1], [true, true, false], "the same object, updated");

    // The next start decides from the cache at once.
    const next = new CodecAdvertiser({ ...options, log: quietLog() });
    assertEquals(next.decisions().find((d) => d.codec === "hevc")?.advertised, true);
    assertEquals(next.decisions().find((d) => d.codec === "av1")?.advertised, false);

    // Figures taken on a quiet machine are kept; those taken under load are taken again.
    options.cache.put(at(speed("hevc", "libx265"), 1.0));
    options.cache.put(at(speed("av1", "libsvtav1"), 7.5));
    const third = new CodecAdvertiser({ ...options, log: quietLog() });
    assertEquals(third.toMeasure(), ["av1"]);
    assertEquals(third.support.av1, true, "used until measured again");
  }),
);

Deno.test(
  "CodecAdvertiser: with slow codecs allowed nothing is measured and everything that opens is advertised",
  withDb(async (db) => {
    const calls: string[] = [];
    const advertiser = new CodecAdvertiser({
      native: fakeNative({}, calls),
      cache: new SpeedCache(db, MACHINE),
      probe: SOFTWARE,
      cores: 2,
      allowSlow: true,
      log: quietLog(),
    });
    assertEquals(advertiser.toMeasure(), []);
    await advertiser.measureMissing();
    assertEquals(calls, []);
    assertEquals([advertiser.support.h264, advertiser.support.hevc, advertiser.support.av1], [
      true,
      true,
      true,
    ]);
  }),
);

Deno.test(
  "CodecAdvertiser: a failed measurement leaves the codec unadvertised and the others measured",
  withDb(async (db) => {
    let calls = 0;
    const native = {
      bench: (name: string) => {
        calls++;
        if (name.includes("hevc")) return Promise.reject(new Error("no hevc encoder could be opened"));
        return Promise.resolve(speed("av1", "libsvtav1") as unknown as Record<string, unknown>);
      },
    } as unknown as NativeCore;
    const advertiser = new CodecAdvertiser({
      native,
      cache: new SpeedCache(db, MACHINE),
      probe: SOFTWARE,
      cores: 2,
      allowSlow: false,
      log: quietLog(),
    });
    await advertiser.measureMissing();
    assertEquals(calls, 2);
    assertEquals([advertiser.support.hevc, advertiser.support.av1], [false, true]);
  }),
);

Deno.test(
  "CodecAdvertiser: a stop request between codecs ends the measurement",
  withDb(async (db) => {
    const calls: string[] = [];
    const advertiser = new CodecAdvertiser({
      native: fakeNative({}, calls),
      cache: new SpeedCache(db, MACHINE),
      probe: SOFTWARE,
      cores: 2,
      allowSlow: false,
      log: quietLog(),
    });
    let stop = false;
    const measuring = advertiser.measureMissing(() => stop);
    stop = true;
    await measuring;
    assertEquals(calls, ["encoder_speed:hevc:1280x720@60"]);
  }),
);
