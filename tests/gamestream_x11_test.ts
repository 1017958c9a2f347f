/**
 * Issue 4, "what Desktop shows": with `--x11-display` naming a reachable X server, a GameStream session
 * streams that display (XShm capture, scaled to the client's mode) and the client's mouse reaches it through XTest. A private Xvfb
 * stands in for the desktop; the pointer is read back from the X server itself.
 */
import { assert, assertEquals } from "./assert.ts";
import { startXvfb, XVFB, XVFB_SKIP_REASON } from "./xvfb.ts";
import { startGameStreamHost, submitPinWhenAsked, waitUntil } from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlTag } from "./gamestream_client/client.ts";
import { NativeCore } from "../host/native_abi.ts";

const MODE = { width: 960, height: 540, fps: 30, bitrateKbps: 8_000, packetSize: 1024 };
const BUTTON1_MASK = 1 << 8;

Deno.test({
  name: `GameStream on an X display: XShm capture streams it, XTest moves its pointer${XVFB_SKIP_REASON}`,
  ignore: XVFB === null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const xvfb = await startXvfb({ size: "1280x720" });
    const native = NativeCore.open();
    const probe = await native.openX11Input(xvfb.display);
    const { host, base, api } = await startGameStreamHost(["--x11-display", xvfb.display]);
    const client = new GameStreamTestClient("127.0.0.1", base);
    const describe = () =>
      [`video: ${JSON.stringify(client.video?.stats() ?? null)}`, ...host.stderr().split("\n").slice(-30)]
        .join("\n");
    try {
      assert(host.stderr().includes("input goes to the X display through XTest"), host.stderr());
      assertEquals(await client.pair("4711", submitPinWhenAsked(api, "4711")), "paired");
      const launch = await client.launch(MODE);
      const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, MODE);
      await client.startStreams(stream, { packetSize: MODE.packetSize });
      await waitUntil(
        "30 decoded frames of the X display",
        () => {
          return Number(client.video!.stats().frames_decoded ?? 0) >= 30;
        },
        30_000,
        describe,
      );
      // The 1280×720 display arrives scaled to the client's 960×540 mode.
      assertEquals(client.video!.stats().width, 960);
      assertEquals(client.video!.stats().height, 540);
      assert(host.stderr().includes(`"video_source":"x11 ${xvfb.display}"`), describe());

      // Moonlight's absolute mouse is in the client's frame; the host scales it to the X screen.
      client.control!.sendInput({ kind: "mouse_absolute", x: 320, y: 180, refWidth: 640, refHeight: 360 });
      client.control!.sendInput({ kind: "mouse_button", down: true, button: 1 });
      await waitUntil(
        "the pointer at 640,360 with the left button down",
        () => {
          const { x, y, buttonMask } = probe.pointer();
          return x === 640 && y === 360 && (buttonMask & BUTTON1_MASK) !== 0;
        },
        10_000,
        () => `${JSON.stringify(probe.pointer())}\n${describe()}`,
      );
      client.control!.sendInput({ kind: "mouse_button", down: false, button: 1 });
      client.control!.sendInput({ kind: "mouse_relative", dx: 15, dy: -10 });
      await waitUntil(
        "the pointer moved by 15,-10 with no button down",
        () => {
          const { x, y, buttonMask } = probe.pointer();
          return x === 655 && y === 350 && (buttonMask & BUTTON1_MASK) === 0;
        },
        10_000,
        () => `${JSON.stringify(probe.pointer())}\n${describe()}`,
      );
    } finally {
      await client.close();
      await host.cleanup();
      probe.close();
      native.close();
      await xvfb.stop();
    }
  },
});
