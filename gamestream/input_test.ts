// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  decodeInputPacket,
  encodeInputEvent,
  INPUT_MAGIC,
  inputChannel,
  InputDecodeError,
  inputReliable,
  MAX_TEXT_BYTES,
} from "./input.ts";
import type { InputDecodeErrorCode, InputEvent } from "./input.ts";

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const i16 = fc.integer({ min: -0x8000, max: 0x7fff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const f32 = fc.float(); // every 32-bit float, NaN and ±0 included
const tag = <K extends string>(kind: K) => fc.constant(kind);
// Plain prototypes, so deepStrictEqual compares them with the decoder's object literals.
const record = <T>(shape: { [K in keyof T]: fc.Arbitrary<T[K]> }) =>
  fc.record(shape, { noNullPrototype: true });

/** Every in-range InputEvent; decode(encode(e)) must give it back exactly. */
const inputEvent: fc.Arbitrary<InputEvent> = fc.oneof(
  record({ kind: tag("haptics"), enabled: fc.boolean() }),
  record({ kind: tag("key"), down: fc.boolean(), keyCode: u16, modifiers: u8, flags: u8 }),
  record({ kind: tag("text"), text: fc.string({ unit: "binary", minLength: 1, maxLength: 8 }) }),
  record({ kind: tag("mouse_relative"), dx: i16, dy: i16 }),
  record({
    kind: tag("mouse_absolute"),
    x: i16,
    y: i16,
    refWidth: fc.integer({ min: 1, max: 0x10000 }),
    refHeight: fc.integer({ min: 1, max: 0x10000 }),
  }),
  record({ kind: tag("mouse_button"), down: fc.boolean(), button: u8 }),
  record({ kind: tag("scroll"), amount: i16 }),
  record({ kind: tag("hscroll"), amount: i16 }),
  record({
    kind: tag("gamepad"),
    controller: u16,
    activeMask: u16,
    buttons: u32,
    leftTrigger: u8,
    rightTrigger: u8,
    leftStickX: i16,
    leftStickY: i16,
    rightStickX: i16,
    rightStickY: i16,
  }),
  record({
    kind: tag("touch"),
    eventType: u8,
    rotation: u16,
    pointerId: u32,
    x: f32,
    y: f32,
    pressureOrDistance: f32,
    contactAreaMajor: f32,
    contactAreaMinor: f32,
  }),
  record({
    kind: tag("pen"),
    eventType: u8,
    tool: u8,
    buttons: u8,
    x: f32,
    y: f32,
    pressureOrDistance: f32,
    rotation: u16,
    tilt: u8,
    contactAreaMajor: f32,
    contactAreaMinor: f32,
  }),
  record({ kind: tag("controller_arrival"), controller: u8, type: u8, capabilities: u16, buttons: u32 }),
  record({
    kind: tag("controller_touch"),
    controller: u8,
    eventType: u8,
    touchpadIndex: u8,
    pointerId: u32,
    x: f32,
    y: f32,
    pressure: f32,
  }),
  record({ kind: tag("controller_motion"), controller: u8, motionType: u8, x: f32, y: f32, z: f32 }),
  record({ kind: tag("controller_battery"), controller: u8, state: u8, percent: u8 }),
);

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function decodeError(bytes: Uint8Array): InputDecodeErrorCode {
  const error = assertThrows(() => decodeInputPacket(bytes));
  assert(error instanceof InputDecodeError, `expected InputDecodeError, got ${error}`);
  return error.code;
}

Deno.test("input: decode(encode(e)) deep-equals e for every event kind (property)", () => {
  fc.assert(
    fc.property(inputEvent, (event) => {
      assertEquals(decodeInputPacket(encodeInputEvent(event)), event);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("input: byte layouts match §6.6 (BE32 size, LE32 magic, LE/BE fields, LE floats)", () => {
  const cases: [InputEvent, string][] = [
    [{ kind: "haptics", enabled: true }, "00 00 00 06 0d 00 00 00 01 00"],
    [
      { kind: "key", down: true, keyCode: 0x8041, modifiers: 0x01, flags: 0 },
      "00 00 00 0a 03 00 00 00 00 41 80 01 00 00",
    ],
    [
      { kind: "key", down: false, keyCode: 0x41, modifiers: 0, flags: 1 },
      "00 00 00 0a 04 00 00 00 01 41 00 00 00 00",
    ],
    [{ kind: "text", text: "é" }, "00 00 00 06 17 00 00 00 c3 a9"],
    [{ kind: "mouse_relative", dx: -2, dy: 0x0102 }, "00 00 00 08 07 00 00 00 ff fe 01 02"],
    [
      { kind: "mouse_absolute", x: 640, y: 360, refWidth: 1280, refHeight: 720 },
      "00 00 00 0e 05 00 00 00 02 80 01 68 00 00 04 ff 02 cf",
    ],
    [{ kind: "mouse_button", down: true, button: 3 }, "00 00 00 05 08 00 00 00 03"],
    [{ kind: "mouse_button", down: false, button: 1 }, "00 00 00 05 09 00 00 00 01"],
    [{ kind: "scroll", amount: -120 }, "00 00 00 0a 0a 00 00 00 ff 88 ff 88 00 00"],
    [{ kind: "hscroll", amount: 120 }, "00 00 00 06 01 00 00 55 00 78"],
    [
      {
        kind: "gamepad",
        controller: 1,
        activeMask: 3,
        buttons: 0x00101000,
        leftTrigger: 0xff,
        rightTrigger: 7,
        leftStickX: -32768,
        leftStickY: 32767,
        rightStickX: 0,
        rightStickY: -1,
      },
      "00 00 00 1e 0c 00 00 00 1a 00 01 00 03 00 14 00 00 10 ff 07 00 80 ff 7f 00 00 ff ff 9c 00 10 00 55 00",
    ],
    [
      {
        kind: "touch",
        eventType: 1,
        rotation: 0xffff,
        pointerId: 9,
        x: 0.5,
        y: 1,
        pressureOrDistance: 0,
        contactAreaMajor: 0,
        contactAreaMinor: 0,
      },
      "00 00 00 20 02 00 00 55 01 00 ff ff 09 00 00 00 00 00 00 3f 00 00 80 3f" + " 00 00 00 00".repeat(3),
    ],
    [
      {
        kind: "pen",
        eventType: 3,
        tool: 2,
        buttons: 1,
        x: 0.5,
        y: 0.5,
        pressureOrDistance: 1,
        rotation: 90,
        tilt: 0xff,
        contactAreaMajor: 0,
        contactAreaMinor: 0,
      },
      "00 00 00 20 03 00 00 55 03 02 01 00 00 00 00 3f 00 00 00 3f 00 00 80 3f 5a 00 ff 00" +
      " 00 00 00 00".repeat(2),
    ],
    [
      { kind: "controller_arrival", controller: 2, type: 2, capabilities: 0x1ff, buttons: 0x001fffff },
      "00 00 00 0c 04 00 00 55 02 02 ff 01 ff ff 1f 00",
    ],
    [
      {
        kind: "controller_touch",
        controller: 0,
        eventType: 1,
        touchpadIndex: 1,
        pointerId: 2,
        x: 1,
        y: 0,
        pressure: 1,
      },
      "00 00 00 18 05 00 00 55 00 01 00 01 02 00 00 00 00 00 80 3f 00 00 00 00 00 00 80 3f",
    ],
    [
      { kind: "controller_motion", controller: 3, motionType: 2, x: 1, y: -2, z: 0 },
      "00 00 00 14 06 00 00 55 03 02 00 00 00 00 80 3f 00 00 00 c0 00 00 00 00",
    ],
    [
      { kind: "controller_battery", controller: 0, state: 3, percent: 0xff },
      "00 00 00 08 07 00 00 55 00 03 ff 00",
    ],
  ];
  for (const [event, bytes] of cases) {
    assertEquals(hex(encodeInputEvent(event)), bytes, event.kind);
    assertEquals(decodeInputPacket(Uint8Array.from(bytes.split(" "), (b) => parseInt(b, 16))), event);
  }
});

Deno.test("input: bad size field, unknown magic, short body and bad text are typed errors", () => {
  const key = encodeInputEvent({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 });
  assertEquals(decodeError(key.subarray(0, 7)), "short");
  const wrongSize = key.slice();
  wrongSize[3] = 9;
  assertEquals(decodeError(wrongSize), "size_mismatch");
  assertEquals(decodeError(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0)), "size_mismatch");
  const unknown = key.slice();
  unknown[4] = 0x77;
  assertEquals(decodeError(unknown), "unknown_magic");
  assertEquals(decodeError(Uint8Array.of(0, 0, 0, 4, 0x06, 0, 0, 0)), "unknown_magic"); // Gen 4 relative mouse
  assertEquals(decodeError(Uint8Array.of(0, 0, 0, 5, 3, 0, 0, 0, 0)), "short");
  assertEquals(decodeError(Uint8Array.of(0, 0, 0, 5, 0x17, 0, 0, 0, 0xff)), "bad_text");
  assertEquals(decodeError(Uint8Array.of(0, 0, 0, 6, 0x17, 0, 0, 0, 0xed, 0xa0)), "bad_text"); // truncated
  assertEquals(decodeError(Uint8Array.of(0, 0, 0, 4, 0x17, 0, 0, 0)), "bad_text"); // empty
  const tooLong = new Uint8Array(8 + MAX_TEXT_BYTES + 1).fill(0x61);
  new DataView(tooLong.buffer).setUint32(0, tooLong.length - 4);
  new DataView(tooLong.buffer).setUint32(4, INPUT_MAGIC.UTF8_TEXT, true);
  assertEquals(decodeError(tooLong), "bad_text");
  assertEquals(
    decodeInputPacket(tooLong.subarray(0, tooLong.length - 1).map((b, i) => i === 3 ? b - 1 : b)),
    {
      kind: "text",
      text: "a".repeat(MAX_TEXT_BYTES),
    },
  );
});

Deno.test("input: a BOM is text, and a longer body than the table's is accepted (tail ignored)", () => {
  assertEquals(decodeInputPacket(Uint8Array.of(0, 0, 0, 7, 0x17, 0, 0, 0, 0xef, 0xbb, 0xbf)), {
    kind: "text",
    text: "\ufeff",
  });
  const button = Uint8Array.of(0, 0, 0, 7, 8, 0, 0, 0, 2, 0xaa, 0xbb);
  assertEquals(decodeInputPacket(button), { kind: "mouse_button", down: true, button: 2 });
  assertThrows(() => encodeInputEvent({ kind: "text", text: "😀".repeat(9) }), /UTF-8 bytes/);
});

Deno.test("input: channels and reliability follow Moonlight (§6.1)", () => {
  const touch = (eventType: number): InputEvent => ({
    kind: "touch",
    eventType,
    rotation: 0,
    pointerId: 0,
    x: 0,
    y: 0,
    pressureOrDistance: 0,
    contactAreaMajor: 0,
    contactAreaMinor: 0,
  });
  assertEquals(inputChannel({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 }), 2);
  assertEquals(inputChannel({ kind: "mouse_relative", dx: 1, dy: 1 }), 3);
  assertEquals(inputChannel({ kind: "text", text: "a" }), 6);
  assertEquals(inputChannel(touch(1)), 5);
  assertEquals(inputChannel({ kind: "controller_battery", controller: 5, state: 0, percent: 0 }), 0x15);
  assertEquals(
    inputChannel({ kind: "controller_motion", controller: 15, motionType: 1, x: 0, y: 0, z: 0 }),
    0x2f,
  );
  assertEquals([0, 1, 2, 3].map((t) => inputReliable(touch(t))), [false, true, true, false]);
  assertEquals(
    inputReliable({ kind: "controller_motion", controller: 0, motionType: 1, x: 0, y: 0, z: 0 }),
    true,
  );
  assertEquals(
    inputReliable({ kind: "controller_motion", controller: 0, motionType: 1, x: 1, y: 0, z: 0 }),
    false,
  );
});

Deno.test("input fuzz: random bytes decode or throw InputDecodeError, nothing else", () => {
  const magics = Object.values(INPUT_MAGIC);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      fc.boolean(),
      fc.option(fc.constantFrom(...magics)),
      (bytes, fixSize, magic) => {
        const packet = bytes.slice();
        const view = new DataView(packet.buffer);
        // Steer most runs past the header checks so the per-magic bodies get exercised too.
        if (fixSize && packet.length >= 4) view.setUint32(0, packet.length - 4, false);
        if (magic !== null && packet.length >= 8) view.setUint32(4, magic, true);
        try {
          const event = decodeInputPacket(packet);
          assert(typeof event.kind === "string");
        } catch (error) {
          if (!(error instanceof InputDecodeError)) throw error;
        }
      },
    ),
    { numRuns: 20000 },
  );
});
