import fc from "fast-check";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { decodeInputPacket, encodeInputEvent, InputDecodeError } from "./input.ts";
import type { InputEvent } from "./input.ts";

const SAMPLES: InputEvent[] = [
  { kind: "haptics", enabled: true },
  { kind: "key", down: true, keyCode: 0x41, modifiers: 0x03, flags: 0 },
  { kind: "key", down: false, keyCode: 0xa0, modifiers: 0, flags: 1 },
  { kind: "text", text: "é" },
  { kind: "mouse_relative", dx: -5, dy: 300 },
  { kind: "mouse_absolute", x: 640, y: 360, refWidth: 1280, refHeight: 720 },
  { kind: "mouse_button", down: true, button: 3 },
  { kind: "scroll", amount: -120 },
  { kind: "hscroll", amount: 60 },
  {
    kind: "gamepad",
    controller: 1,
    activeMask: 3,
    buttons: 0x101000,
    leftTrigger: 255,
    rightTrigger: 7,
    leftStickX: -32768,
    leftStickY: 32767,
    rightStickX: 0,
    rightStickY: -1,
  },
  { kind: "touch", eventType: 1, pointerId: 9, x: 0.5, y: 0.25, pressure: 1 },
  { kind: "pen", eventType: 3, tool: 1, buttons: 2, x: 0.75, y: 0.5, pressure: 0.5 },
  { kind: "controller_arrival", controller: 0, type: 1, capabilities: 0x3, buttons: 0xffff },
  { kind: "controller_touch", controller: 0, eventType: 1, pointerId: 2, x: 0.5, y: 0.5 },
  { kind: "controller_motion", controller: 0, motionType: 2, x: 1.5, y: -2.5, z: 0 },
  { kind: "controller_battery", controller: 0, state: 2, percent: 80 },
];

Deno.test("input: encode → decode is the identity for every event kind", () => {
  for (const event of SAMPLES) assertEquals(decodeInputPacket(encodeInputEvent(event)), event);
});

Deno.test("input: the key-down layout is Moonlight's (BE32 size, LE32 magic, flags, LE16 VK, modifiers)", () => {
  const bytes = encodeInputEvent({ kind: "key", down: true, keyCode: 0x41, modifiers: 1, flags: 0 });
  assertEquals([...bytes], [0, 0, 0, 10, 3, 0, 0, 0, 0, 0x41, 0, 1, 0, 0]);
});

Deno.test("input: wrong size field, unknown magic, short body and bad text are typed errors", () => {
  const key = encodeInputEvent({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 });
  const wrongSize = key.slice();
  wrongSize[3] = 9;
  assertThrows(() => decodeInputPacket(wrongSize), /size/);
  const unknown = key.slice();
  unknown[4] = 0x77;
  assertThrows(() => decodeInputPacket(unknown), /magic/);
  assertThrows(() => decodeInputPacket(Uint8Array.of(0, 0, 0, 5, 3, 0, 0, 0, 0)), /short/);
  const badText = Uint8Array.of(0, 0, 0, 5, 0x17, 0, 0, 0, 0xff);
  assertThrows(() => decodeInputPacket(badText), /UTF-8/);
});

Deno.test("input fuzz: random bytes decode or throw InputDecodeError, nothing else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), fc.boolean(), (bytes, fixSize) => {
      const packet = bytes.slice();
      if (fixSize && packet.length >= 4) new DataView(packet.buffer).setUint32(0, packet.length - 4, false);
      try {
        decodeInputPacket(packet);
      } catch (error) {
        if (!(error instanceof InputDecodeError)) throw error;
      }
    }),
    { numRuns: 5000 },
  );
});
