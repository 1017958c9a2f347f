/**
 * The X11 input injector through the FFI: a private Xvfb per test, the 16-byte event encoding, and
 * the native side's refusals. Whether events really reach the X server (key state, pointer position,
 * button mask, wheel clicks) is checked by the Rust tests in native-core/src/inject/xtest.rs, which
 * can read the server's state back.
 */
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../tests/assert.ts";
import { startXvfb, XVFB, XVFB_SKIP_REASON as SKIP_REASON } from "../tests/xvfb.ts";
import {
  encodeNativeInputEvent,
  NATIVE_INPUT_EVENT_BYTES,
  NativeCore,
  NativeError,
  STATUS,
} from "./native_abi.ts";

/** Runs `body` with the native core and a private Xvfb, stopping both afterwards. */
async function withXvfb(extra: string[], body: (native: NativeCore, display: string) => Promise<void>) {
  const server = await startXvfb({ extra });
  const native = NativeCore.open();
  try {
    await body(native, server.display);
  } finally {
    native.close();
    await server.stop();
  }
}

Deno.test("encodeNativeInputEvent lays out the 16-byte little-endian event", () => {
  const hex = (event: Parameters<typeof encodeNativeInputEvent>[0]) =>
    Array.from(encodeNativeInputEvent(event), (b) => b.toString(16).padStart(2, "0")).join("");
  assertEquals(NATIVE_INPUT_EVENT_BYTES, 16);
  assertEquals(hex({ kind: "key", keysym: 0x61, down: true }), "0101000061000000" + "0".repeat(16));
  assertEquals(hex({ kind: "mouse_abs", x: 100, y: 50 }), "0200000064000000" + "32000000" + "0".repeat(8));
  assertEquals(hex({ kind: "mouse_rel", dx: -1, dy: 2 }), "03000000ffffffff" + "02000000" + "0".repeat(8));
  assertEquals(hex({ kind: "button", button: 3, down: false }), "0400000003" + "0".repeat(22));
  assertEquals(
    hex({ kind: "scroll", vertical: -120, horizontal: 240 }),
    "0500000088ffffff" + "f0000000" + "0".repeat(8),
  );
  assertThrows(() => encodeNativeInputEvent({ kind: "mouse_abs", x: 1.5, y: 0 }), /x 1.5/);
  assertThrows(() => encodeNativeInputEvent({ kind: "scroll", vertical: 2 ** 31, horizontal: 0 }), /32-bit/);
  assertThrows(() => encodeNativeInputEvent({ kind: "key", keysym: -1, down: true }), /keysym -1/);
});

Deno.test("X11 input: a display that does not exist is refused with a clear message", async () => {
  const native = NativeCore.open();
  try {
    const error = await assertRejects(
      () => native.openX11Input(":65005"),
      /X11 input on :65005: .*cannot open display :65005/,
    );
    assert(error instanceof NativeError);
    await assertRejects(() => native.openX11Input(""), /display name is empty/);
  } finally {
    native.close();
  }
});

Deno.test({
  name: `X11 input: open, screen size, inject, refuse bad events, close${SKIP_REASON}`,
  ignore: XVFB === null,
  fn: () =>
    withXvfb([], async (native, display) => {
      const injector = await native.openX11Input(display);
      try {
        assertEquals(injector.screenSize(), { width: 640, height: 480 });
        injector.inject({ kind: "mouse_abs", x: 100, y: 50 });
        injector.inject({ kind: "mouse_rel", dx: 5, dy: -5 });
        injector.inject({ kind: "key", keysym: 0x61, down: true });
        injector.inject({ kind: "key", keysym: 0x61, down: false });
        injector.inject({ kind: "button", button: 1, down: true });
        injector.inject({ kind: "button", button: 1, down: false });
        injector.inject({ kind: "scroll", vertical: 120, horizontal: -60 });

        const good = encodeNativeInputEvent({ kind: "mouse_abs", x: 1, y: 1 });
        const short = assertThrows(() => injector.injectRaw(good.subarray(0, 15))) as NativeError;
        assert(short instanceof NativeError);
        assertEquals(short.status, STATUS.INVALID_ARGUMENT);
        assertMatch(short.message, /15 bytes, expected 16/);

        const kind99 = new Uint8Array(16);
        kind99[0] = 99;
        const badKind = assertThrows(() => injector.injectRaw(kind99)) as NativeError;
        assertEquals(badKind.status, STATUS.INVALID_ARGUMENT);
        assertMatch(badKind.message, /kind 99/);

        const badButton = assertThrows(() =>
          injector.inject({ kind: "button", button: 7, down: true })
        ) as NativeError;
        assertEquals(badButton.status, STATUS.INVALID_ARGUMENT);
        assertMatch(badButton.message, /mouse button 7/);

        // U+1234 is on no key of the default keymap: reported, not fatal.
        const unmapped = assertThrows(() =>
          injector.inject({ kind: "key", keysym: 0x0100_1234, down: true })
        ) as NativeError;
        assertEquals(unmapped.status, STATUS.NOT_FOUND);
        assertMatch(unmapped.message, /keysym 0x1001234 has no key/);

        injector.inject({ kind: "mouse_abs", x: 100, y: 50 }); // still usable
      } finally {
        injector.close();
        injector.close(); // idempotent
      }
      assertThrows(() => injector.screenSize(), /closed/);
      assertThrows(() => injector.inject({ kind: "mouse_rel", dx: 1, dy: 1 }), /closed/);
    }),
});

Deno.test({
  name: `X11 input: a server without XTEST is refused with the reason${SKIP_REASON}`,
  ignore: XVFB === null,
  fn: () =>
    withXvfb(["-tst"], async (native, display) => {
      const error = await assertRejects(
        () => native.openX11Input(display),
        new RegExp(`X display ${display} does not offer the XTEST extension`),
      );
      assert(error instanceof NativeError);
      assertEquals(error.status, STATUS.UNSUPPORTED);
    }),
});
