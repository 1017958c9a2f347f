import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { NativeCore } from "./native_abi.ts";

const KEY = "2b7e151628aed2a6abf7158809cf4f3c";
const SALT = "0badf00d";
const FRAMES = 120;

/** How often the test polls the native session, as the control plane would; the poll count is wall-clock bound. */
const POLL_INTERVAL_MS = 50;
/** A 2-core CI machine encodes the 120 frames in a few seconds; the margin covers a loaded one. */
const SESSION_TIMEOUT_MS = 60_000;

Deno.test("a lossy video session over loopback, driven from TS with no FFI call per packet or frame", async () => {
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
  // FFI accounting. Polls happen per wall-clock interval, control actions per loss event; neither may
  // grow with the frames or packets that pass between them, and nothing else may cross at all.
  let pollCalls = 0;
  let controlCalls = 0;
  const poll = <T>(probe: () => T): T => {
    const before = native.ffiCalls;
    const value = probe();
    pollCalls += native.ffiCalls - before;
    return value;
  };
  const control = (action: () => void): void => {
    const before = native.ffiCalls;
    action();
    const crossings = native.ffiCalls - before;
    assertEquals(crossings, 1, "one FFI call per control action");
    controlCalls += crossings;
  };
  const waitFor = async (what: string, condition: () => boolean): Promise<void> => {
    const deadline = Date.now() + SESSION_TIMEOUT_MS;
    while (!poll(condition)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  };
  try {
    const started = poll(() => sender.events());
    assertEquals(started[0]?.event, "started");
    assertEquals(started[0]?.encoder, "libx264");
    let idrRequests = 0;
    control(() => sender.setBitrate(30_000));
    const deadline = Date.now() + SESSION_TIMEOUT_MS;
    while (!poll(() => sender.finished)) {
      // The client's loss → keyframe loop, through the control plane: one call per loss event.
      for (const event of poll(() => receiver.events())) {
        if (event.event === "frame_lost") {
          control(() => sender.requestIdr());
          idrRequests++;
        }
      }
      if (Date.now() > deadline) throw new Error("timed out waiting for the sender to finish");
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
    type Received = {
      frames_complete: number;
      frames_fec_recovered: number;
      loss_events: number;
      stamps_verified: number;
      stamps_mismatched: number;
      auth_failures: number;
    };
    // Datagrams of the last frames may still be in flight when the sender reports finished.
    await waitFor(
      "the receiver to verify 90 % of the frames",
      () => (receiver.stats() as Received).stamps_verified >= FRAMES * 0.9,
    );
    const sent = poll(() => sender.stats()) as {
      frames_sent: number;
      packets_sent: number;
      packets_dropped_impairment: number;
    };
    const received = poll(() => receiver.stats()) as Received;
    assertEquals(sent.frames_sent, FRAMES);
    assert(sent.packets_dropped_impairment > 0, "loss was injected");
    assert(received.frames_fec_recovered > 0, "FEC recovered frames");
    assertEquals(received.auth_failures, 0);
    assertEquals(received.stamps_mismatched, 0);
    assert(
      poll(() => sender.events()).some((e) => e.event === "bitrate_changed" && e.kbps === 30_000),
      "bitrate changed without a restart",
    );
    // Besides polls and control actions the session crossed exactly 3 times (start sender, start
    // receiver, receiver port), however many frames and packets went through.
    const perSession = native.ffiCalls - pollCalls - controlCalls;
    assertEquals(perSession, 3, `${native.ffiCalls} calls: ${pollCalls} polling, ${controlCalls} control`);
    assertEquals(controlCalls, 1 + idrRequests);
    assert(
      idrRequests <= received.loss_events,
      `${idrRequests} IDR requests, ${received.loss_events} losses`,
    );
    const perFrame = (perSession + controlCalls) / sent.frames_sent;
    assert(perFrame < 0.5, `${perFrame} FFI calls per frame (${sent.packets_sent} packets)`);
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
