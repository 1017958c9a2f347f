import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import type { InputEvent } from "../gamestream/input.ts";
import fc from "fast-check";
import { RECORDING_INJECTOR_CAPACITY, RecordingInjector, windowsVkToX11Keysym } from "./input_injection.ts";
import { Logger } from "./log.ts";

const move = (dx: number): InputEvent => ({ kind: "mouse_relative", dx, dy: 0 });
const keyA: InputEvent = { kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 };

Deno.test("RecordingInjector keeps the last N events, oldest first", () => {
  const recorder = new RecordingInjector(undefined, 3);
  assertEquals(recorder.name, "recording");
  for (let i = 0; i < 10; i++) recorder.inject(move(i));
  assertEquals(recorder.events(), [move(7), move(8), move(9)]);
  const many = new RecordingInjector();
  for (let i = 0; i < RECORDING_INJECTOR_CAPACITY * 3 + 5; i++) many.inject(move(i % 1000));
  assertEquals(many.events().length, RECORDING_INJECTOR_CAPACITY);
  assertEquals(many.events().at(-1), move((RECORDING_INJECTOR_CAPACITY * 3 + 4) % 1000));
});

Deno.test("RecordingInjector.waitFor: retained, future and missing events; close rejects waiters", async () => {
  const recorder = new RecordingInjector(undefined, 3);
  recorder.inject(move(1));
  assertEquals(await recorder.waitFor((e) => e.kind === "mouse_relative", 10), move(1));
  const waiting = recorder.waitFor((e) => e.kind === "key" && e.keyCode === 0x41, 1000);
  for (let i = 0; i < 5; i++) recorder.inject(move(i));
  recorder.inject(keyA);
  assertEquals(await waiting, keyA);
  await assertRejects(() => recorder.waitFor((e) => e.kind === "text", 20), /within 20 ms/);
  const pending = recorder.waitFor((e) => e.kind === "text", 60_000);
  recorder.close();
  await assertRejects(() => pending, /closed/);
  recorder.inject({ kind: "text", text: "late" });
  assert(!recorder.events().some((e) => e.kind === "text"));
});

Deno.test("windowsVkToX11Keysym: letters, digits, function keys, navigation, modifiers, punctuation, numpad", () => {
  const cases: [number, number][] = [
    [0x41, 0x61], // A → a
    [0x5a, 0x7a], // Z → z
    [0x30, 0x30], // 0
    [0x39, 0x39], // 9
    [0x70, 0xffbe], // F1
    [0x7b, 0xffc9], // F12
    [0x87, 0xffd5], // F24
    [0x25, 0xff51], // Left
    [0x26, 0xff52], // Up
    [0x27, 0xff53], // Right
    [0x28, 0xff54], // Down
    [0x0d, 0xff0d], // Return
    [0x1b, 0xff1b], // Escape
    [0x08, 0xff08], // BackSpace
    [0x09, 0xff09], // Tab
    [0x20, 0x20], // space
    [0x24, 0xff50], // Home
    [0x23, 0xff57], // End
    [0x21, 0xff55], // Prior
    [0x22, 0xff56], // Next
    [0x2d, 0xff63], // Insert
    [0x2e, 0xffff], // Delete
    [0x10, 0xffe1], // Shift → Shift_L
    [0xa1, 0xffe2], // RShift
    [0xa3, 0xffe4], // RControl
    [0xa5, 0xffea], // RMenu → Alt_R
    [0x5b, 0xffeb], // LWin → Super_L
    [0x14, 0xffe5], // Caps_Lock
    [0xba, 0x3b], // OEM_1 ;
    [0xbb, 0x3d], // OEM_PLUS =
    [0xbc, 0x2c], // OEM_COMMA
    [0xbd, 0x2d], // OEM_MINUS
    [0xbe, 0x2e], // OEM_PERIOD
    [0xbf, 0x2f], // OEM_2 /
    [0xc0, 0x60], // OEM_3 `
    [0xdb, 0x5b], // OEM_4 [
    [0xdc, 0x5c], // OEM_5 \
    [0xdd, 0x5d], // OEM_6 ]
    [0xde, 0x27], // OEM_7 '
    [0x60, 0xffb0], // NUMPAD0 → KP_0
    [0x69, 0xffb9], // NUMPAD9 → KP_9
    [0x6b, 0xffab], // KP_Add
    [0x6e, 0xffae], // KP_Decimal
    [0x90, 0xff7f], // Num_Lock
    [0xad, 0x1008ff12], // VOLUME_MUTE → XF86AudioMute
  ];
  for (const [vk, keysym] of cases) assertEquals(windowsVkToX11Keysym(vk), keysym, `VK 0x${vk.toString(16)}`);
  // Moonlight sets 0x8000 on key codes; only the low byte is the VK code.
  assertEquals(windowsVkToX11Keysym(0x8041), 0x61);
  for (const unmapped of [0x00, 0x01, 0x07, 0x3a, 0x40, 0x88, 0xff]) {
    assertEquals(windowsVkToX11Keysym(unmapped), undefined);
  }
  // Every mapped code yields a distinct keysym except the generic/left-hand modifier pairs and the two Print keys.
  const mapped = Array.from({ length: 256 }, (_, vk) => windowsVkToX11Keysym(vk)).filter((k) =>
    k !== undefined
  );
  assertEquals(mapped.length - new Set(mapped).size, 4);
});

Deno.test("RecordingInjector logs kinds and counts, never key codes, text or positions", () => {
  const event = fc.oneof(
    fc.record({
      kind: fc.constant("key" as const),
      down: fc.boolean(),
      keyCode: fc.integer({ min: 0, max: 0xffff }),
      modifiers: fc.integer({ min: 0, max: 0xff }),
      flags: fc.integer({ min: 0, max: 0xff }),
    }),
    fc.record({ kind: fc.constant("text" as const), text: fc.string({ minLength: 1, unit: "grapheme" }) }),
    fc.record({
      kind: fc.constant("mouse_absolute" as const),
      x: fc.integer({ min: 0, max: 8192 }),
      y: fc.integer({ min: 0, max: 8192 }),
      refWidth: fc.constant(1920),
      refHeight: fc.constant(1080),
    }),
  );
  fc.assert(fc.property(fc.array(event, { minLength: 1, maxLength: 20 }), (events) => {
    const lines: string[] = [];
    const recorder = new RecordingInjector(
      new Logger("input", { level: "trace", format: "json", sink: (line) => lines.push(line) }),
    );
    for (const e of events) recorder.inject(e as InputEvent);
    assertEquals(lines.length, events.length);
    const logged = lines.map((line) => JSON.parse(line));
    for (const [i, record] of logged.entries()) {
      const { t: _t, level: _level, target: _target, msg, ...fields } = record;
      assertEquals(msg, "input event recorded");
      assertEquals(Object.keys(fields).sort(), ["count", "kind", "total"]);
      assertEquals(fields.kind, events[i].kind);
      assertEquals(fields.total, i + 1);
      assertEquals(fields.count, events.slice(0, i + 1).filter((e) => e.kind === events[i].kind).length);
    }
    const counts = recorder.counts();
    for (const kind of ["key", "text", "mouse_absolute"] as const) {
      assertEquals(counts[kind] ?? 0, events.filter((e) => e.kind === kind).length);
    }
  }));
});
