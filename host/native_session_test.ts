import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { NativeCore } from "./native_abi.ts";

const KEY = "2b7e151628aed2a6abf7158809cf4f3c";
const SALT = "0badf00d";
const FRAMES = 120;

Deno.test("a lossy video session over loopback, driven from TS with no FFI call per packet", async () => {
  const native = NativeCore.open();
  const receiver = await native.startVideoReceiver({
    key: KEY,
    salt: SALT,
    decode: "h264",
    verify_stamps: true,
  });
  const sender = await native.startVideoSender({
    width: 640,
    height: 360,
    fps: 60,
    encoder: "software",
    bitrate_kbps: 40_000,
    cbr_filler: true,
    fec: { scheme: "gf16", percent: 20 },
    key: KEY,
    salt: SALT,
    destination: `127.0.0.1:${receiver.port}`,
    loss_ppm: 50_000,
    max_frames: FRAMES,
  });
  try {
    const started = sender.events();
    assertEquals(started[0]?.event, "started");
    assertEquals(started[0]?.encoder, "libx264");
    let idrRequests = 0;
    let bitrateChanged = false;
    const deadline = Date.now() + 30_000;
    while (!sender.finished && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      // The client's loss → keyframe loop, through the control plane: one call per loss event.
      for (const event of receiver.events()) {
        if (event.event === "frame_lost") {
          sender.requestIdr();
          idrRequests++;
        }
      }
      if (!bitrateChanged) {
        sender.setBitrate(30_000);
        bitrateChanged = true;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sent = sender.stats() as {
      frames_sent: number;
      packets_sent: number;
      packets_dropped_impairment: number;
    };
    const received = receiver.stats() as {
      frames_complete: number;
      frames_fec_recovered: number;
      stamps_verified: number;
      stamps_mismatched: number;
      auth_failures: number;
    };
    assertEquals(sent.frames_sent, FRAMES);
    assert(sent.packets_dropped_impairment > 0, "loss was injected");
    assert(received.frames_fec_recovered > 0, "FEC recovered frames");
    assertEquals(received.auth_failures, 0);
    assertEquals(received.stamps_mismatched, 0);
    assert(received.stamps_verified >= FRAMES * 0.9, `stamps verified ${received.stamps_verified}/${FRAMES}`);
    assert(
      sender.events().some((e) => e.event === "bitrate_changed" && e.kbps === 30_000),
      "bitrate changed without a restart",
    );
    // Every crossing is per session or per poll: far fewer than packets (and than frames).
    assert(native.ffiCalls < FRAMES, `${native.ffiCalls} FFI calls for ${sent.packets_sent} packets`);
    assert(sent.packets_sent > 20 * native.ffiCalls);
    assert(idrRequests <= FRAMES);
  } finally {
    await sender.close();
    await receiver.close();
    native.close();
  }
});

Deno.test("bad session configs are refused with the field named", async () => {
  const native = NativeCore.open();
  try {
    await assertRejects(
      () => native.startVideoSender({ key: "00".repeat(16), salt: SALT, destination: "127.0.0.1:9" }),
      /all zero/,
    );
    await assertRejects(
      () => native.startVideoSender({ key: KEY, salt: SALT, destination: "nowhere" }),
      /destination/,
    );
    await assertRejects(() => native.startVideoReceiver({ key: KEY, salt: "xyz" }), /salt/);
    await assertRejects(() => native.bench("no-such-bench"), /unknown benchmark/);
  } finally {
    native.close();
  }
});
