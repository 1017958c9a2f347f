/**
 * The XTest backend: the InputEvent → native event translation (pure), and the real thing against a
 * private Xvfb, read back through the X server's own pointer state.
 */
import { assert, assertEquals } from "../tests/assert.ts";
import { startXvfb, XVFB, XVFB_SKIP_REASON } from "../tests/xvfb.ts";
import { nativeEventsFor, X11InputInjector } from "./x11_input.ts";
import { NativeCore } from "./native_abi.ts";

const SCREEN = { width: 1920, height: 1080 };
/** X's Button1Mask / Button3Mask in the pointer state. */
const BUTTON1_MASK = 1 << 8;
const BUTTON3_MASK = 1 << 10;

Deno.test("XTest translation: keys to keysyms, pointer scaled to the screen, wheels, the rest unsupported", () => {
  assertEquals(nativeEventsFor({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 }, SCREEN), [
    { kind: "key", keysym: 0x61, down: true },
  ]);
  // Moonlight may set 0x8000 on the key code; only the low byte names the key.
  assertEquals(
    nativeEventsFor({ kind: "key", down: false, keyCode: 0x800d, modifiers: 0, flags: 0 }, SCREEN),
    [{ kind: "key", keysym: 0xff0d, down: false }],
  );
  assertEquals(
    nativeEventsFor({ kind: "key", down: true, keyCode: 0xff, modifiers: 0, flags: 0 }, SCREEN),
    null,
  );
  // The client's 1280×720 frame onto a 1920×1080 screen; the far edge stays on screen.
  assertEquals(
    nativeEventsFor({ kind: "mouse_absolute", x: 640, y: 360, refWidth: 1280, refHeight: 720 }, SCREEN),
    [{ kind: "mouse_abs", x: 960, y: 540 }],
  );
  assertEquals(
    nativeEventsFor({ kind: "mouse_absolute", x: 1280, y: 720, refWidth: 1280, refHeight: 720 }, SCREEN),
    [{ kind: "mouse_abs", x: 1919, y: 1079 }],
  );
  assertEquals(
    nativeEventsFor({ kind: "mouse_absolute", x: 5, y: 5, refWidth: 0, refHeight: 720 }, SCREEN),
    [],
  );
  assertEquals(nativeEventsFor({ kind: "mouse_relative", dx: -3, dy: 7 }, SCREEN), [
    { kind: "mouse_rel", dx: -3, dy: 7 },
  ]);
  assertEquals(nativeEventsFor({ kind: "mouse_button", down: true, button: 3 }, SCREEN), [
    { kind: "button", button: 3, down: true },
  ]);
  assertEquals(nativeEventsFor({ kind: "mouse_button", down: true, button: 9 }, SCREEN), null);
  assertEquals(nativeEventsFor({ kind: "scroll", amount: -120 }, SCREEN), [
    { kind: "scroll", vertical: -120, horizontal: 0 },
  ]);
  assertEquals(nativeEventsFor({ kind: "hscroll", amount: 240 }, SCREEN), [
    { kind: "scroll", vertical: 0, horizontal: 240 },
  ]);
  assertEquals(nativeEventsFor({ kind: "text", text: "hi" }, SCREEN), null);
  assertEquals(nativeEventsFor({ kind: "haptics", enabled: true }, SCREEN), null);
});

Deno.test({
  name: `XTest backend moves the pointer and presses buttons on a real X server${XVFB_SKIP_REASON}`,
  ignore: XVFB === null,
  fn: async () => {
    const server = await startXvfb({ size: "800x600" });
    const native = NativeCore.open();
    try {
      const injector = await X11InputInjector.open(native, server.display);
      assertEquals(injector.name, "xtest");
      injector.inject({ kind: "mouse_absolute", x: 640, y: 360, refWidth: 1280, refHeight: 720 });
      assertEquals(await settle(() => xy(injector), "400,300"), "400,300");
      injector.inject({ kind: "mouse_relative", dx: 10, dy: -20 });
      assertEquals(await settle(() => xy(injector), "410,280"), "410,280");
      injector.inject({ kind: "mouse_button", down: true, button: 1 });
      injector.inject({ kind: "mouse_button", down: true, button: 3 });
      const both = BUTTON1_MASK | BUTTON3_MASK;
      assertEquals(await settle(() => injector.pointer().buttonMask & both, both), both);
      injector.inject({ kind: "mouse_button", down: false, button: 1 });
      injector.inject({ kind: "mouse_button", down: false, button: 3 });
      assertEquals(await settle(() => injector.pointer().buttonMask & both, 0), 0);
      injector.inject({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 });
      injector.inject({ kind: "key", down: false, keyCode: 0x41, modifiers: 0, flags: 0 });
      injector.inject({ kind: "gamepad" } as never);
      assertEquals(injector.stats.failed, 0);
      assertEquals(injector.stats.unsupported, 1);
      assert(injector.stats.injected >= 8, JSON.stringify(injector.stats));
      injector.close();
    } finally {
      native.close();
      await server.stop();
    }
  },
});

Deno.test("XTest backend: no X server is a clear refusal", async () => {
  const native = NativeCore.open();
  try {
    let message = "";
    await X11InputInjector.open(native, ":65007").catch((error) => message = String(error));
    assert(/X11 input on :65007/.test(message), message);
  } finally {
    native.close();
  }
});

function xy(injector: X11InputInjector): string {
  const { x, y } = injector.pointer();
  return `${x},${y}`;
}

/** XTest events reach the server asynchronously: poll until `expected` or 3 s. */
async function settle<T>(probe: () => T, expected: T): Promise<T> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const value = probe();
    if (value === expected || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
