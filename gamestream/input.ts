/**
 * Moonlight input packets (payload of control type 0x0206, §6.6) ⇄ one `InputEvent` union. Every packet
 * starts with `BE32 size` (bytes after this field) and `LE32 magic`; Sunshine-mode magics only.
 */

export const INPUT_MAGIC = {
  HAPTICS: 0x0000000d,
  KEY_DOWN: 0x00000003,
  KEY_UP: 0x00000004,
  UTF8_TEXT: 0x00000017,
  MOUSE_MOVE_RELATIVE: 0x00000007,
  MOUSE_MOVE_ABSOLUTE: 0x00000005,
  MOUSE_BUTTON_DOWN: 0x00000008,
  MOUSE_BUTTON_UP: 0x00000009,
  SCROLL: 0x0000000a,
  HSCROLL: 0x55000001,
  MULTI_CONTROLLER: 0x0000000c,
  TOUCH: 0x55000002,
  PEN: 0x55000003,
  CONTROLLER_ARRIVAL: 0x55000004,
  CONTROLLER_TOUCH: 0x55000005,
  CONTROLLER_MOTION: 0x55000006,
  CONTROLLER_BATTERY: 0x55000007,
} as const;

/** Moonlight sends one code point per packet; 32 bytes is its buffer. */
export const MAX_TEXT_BYTES = 32;

export type InputEvent =
  | { kind: "haptics"; enabled: boolean }
  | { kind: "key"; down: boolean; keyCode: number; modifiers: number; flags: number }
  | { kind: "text"; text: string }
  | { kind: "mouse_relative"; dx: number; dy: number }
  | { kind: "mouse_absolute"; x: number; y: number; refWidth: number; refHeight: number }
  | { kind: "mouse_button"; down: boolean; button: number }
  | { kind: "scroll"; amount: number }
  | { kind: "hscroll"; amount: number }
  | {
    kind: "gamepad";
    controller: number;
    activeMask: number;
    buttons: number;
    leftTrigger: number;
    rightTrigger: number;
    leftStickX: number;
    leftStickY: number;
    rightStickX: number;
    rightStickY: number;
  }
  | { kind: "touch"; eventType: number; pointerId: number; x: number; y: number; pressure: number }
  | { kind: "pen"; eventType: number; tool: number; buttons: number; x: number; y: number; pressure: number }
  | { kind: "controller_arrival"; controller: number; type: number; capabilities: number; buttons: number }
  | {
    kind: "controller_touch";
    controller: number;
    eventType: number;
    pointerId: number;
    x: number;
    y: number;
  }
  | { kind: "controller_motion"; controller: number; motionType: number; x: number; y: number; z: number }
  | { kind: "controller_battery"; controller: number; state: number; percent: number };

export type InputDecodeErrorCode = "short" | "size_mismatch" | "unknown_magic" | "bad_text";

export class InputDecodeError extends Error {
  override readonly name = "InputDecodeError";
  constructor(readonly code: InputDecodeErrorCode, message: string) {
    super(message);
  }
}

/** Bytes after the 8-byte header each magic needs (`size` − 4, §6.6 table). */
const BODY_LENGTH: Record<number, number> = {
  [INPUT_MAGIC.HAPTICS]: 2,
  [INPUT_MAGIC.KEY_DOWN]: 6,
  [INPUT_MAGIC.KEY_UP]: 6,
  [INPUT_MAGIC.MOUSE_MOVE_RELATIVE]: 4,
  [INPUT_MAGIC.MOUSE_MOVE_ABSOLUTE]: 10,
  [INPUT_MAGIC.MOUSE_BUTTON_DOWN]: 1,
  [INPUT_MAGIC.MOUSE_BUTTON_UP]: 1,
  [INPUT_MAGIC.SCROLL]: 6,
  [INPUT_MAGIC.HSCROLL]: 2,
  [INPUT_MAGIC.MULTI_CONTROLLER]: 26,
  [INPUT_MAGIC.TOUCH]: 28,
  [INPUT_MAGIC.PEN]: 28,
  [INPUT_MAGIC.CONTROLLER_ARRIVAL]: 8,
  [INPUT_MAGIC.CONTROLLER_TOUCH]: 20,
  [INPUT_MAGIC.CONTROLLER_MOTION]: 16,
  [INPUT_MAGIC.CONTROLLER_BATTERY]: 4,
};

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function decodeInputPacket(packet: Uint8Array): InputEvent {
  if (packet.length < 8) throw new InputDecodeError("short", `input packet of ${packet.length} bytes`);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  if (view.getUint32(0, false) !== packet.length - 4) {
    throw new InputDecodeError("size_mismatch", "size field does not match the packet length");
  }
  const magic = view.getUint32(4, true);
  const body = packet.length - 8;
  if (magic === INPUT_MAGIC.UTF8_TEXT) {
    if (body < 1 || body > MAX_TEXT_BYTES) throw new InputDecodeError("bad_text", `text of ${body} bytes`);
    try {
      return { kind: "text", text: utf8Strict.decode(packet.subarray(8)) };
    } catch {
      throw new InputDecodeError("bad_text", "text is not valid UTF-8");
    }
  }
  const expected = BODY_LENGTH[magic];
  if (expected === undefined) {
    throw new InputDecodeError("unknown_magic", `unknown input magic 0x${magic.toString(16)}`);
  }
  if (body < expected) throw new InputDecodeError("short", `input 0x${magic.toString(16)} too short`);
  const u8 = (o: number) => view.getUint8(8 + o);
  const le16 = (o: number) => view.getUint16(8 + o, true);
  const le16s = (o: number) => view.getInt16(8 + o, true);
  const be16s = (o: number) => view.getInt16(8 + o, false);
  const le32 = (o: number) => view.getUint32(8 + o, true);
  const f32 = (o: number) => view.getFloat32(8 + o, true);
  switch (magic) {
    case INPUT_MAGIC.HAPTICS:
      return { kind: "haptics", enabled: le16(0) !== 0 };
    case INPUT_MAGIC.KEY_DOWN:
    case INPUT_MAGIC.KEY_UP:
      return {
        kind: "key",
        down: magic === INPUT_MAGIC.KEY_DOWN,
        flags: u8(0),
        keyCode: le16(1),
        modifiers: u8(3),
      };
    case INPUT_MAGIC.MOUSE_MOVE_RELATIVE:
      return { kind: "mouse_relative", dx: be16s(0), dy: be16s(2) };
    case INPUT_MAGIC.MOUSE_MOVE_ABSOLUTE:
      return {
        kind: "mouse_absolute",
        x: be16s(0),
        y: be16s(2),
        refWidth: view.getUint16(8 + 6, false) + 1,
        refHeight: view.getUint16(8 + 8, false) + 1,
      };
    case INPUT_MAGIC.MOUSE_BUTTON_DOWN:
    case INPUT_MAGIC.MOUSE_BUTTON_UP:
      return { kind: "mouse_button", down: magic === INPUT_MAGIC.MOUSE_BUTTON_DOWN, button: u8(0) };
    case INPUT_MAGIC.SCROLL:
      return { kind: "scroll", amount: be16s(0) };
    case INPUT_MAGIC.HSCROLL:
      return { kind: "hscroll", amount: be16s(0) };
    case INPUT_MAGIC.MULTI_CONTROLLER:
      return {
        kind: "gamepad",
        controller: le16(2),
        activeMask: le16(4),
        buttons: (le16(8) | (le16(22) << 16)) >>> 0,
        leftTrigger: u8(10),
        rightTrigger: u8(11),
        leftStickX: le16s(12),
        leftStickY: le16s(14),
        rightStickX: le16s(16),
        rightStickY: le16s(18),
      };
    case INPUT_MAGIC.TOUCH:
      return {
        kind: "touch",
        eventType: u8(0),
        pointerId: le32(4),
        x: f32(8),
        y: f32(12),
        pressure: f32(16),
      };
    case INPUT_MAGIC.PEN:
      return {
        kind: "pen",
        eventType: u8(0),
        tool: u8(1),
        buttons: u8(2),
        x: f32(4),
        y: f32(8),
        pressure: f32(12),
      };
    case INPUT_MAGIC.CONTROLLER_ARRIVAL:
      return {
        kind: "controller_arrival",
        controller: u8(0),
        type: u8(1),
        capabilities: le16(2),
        buttons: le32(4),
      };
    case INPUT_MAGIC.CONTROLLER_TOUCH:
      return {
        kind: "controller_touch",
        controller: u8(0),
        eventType: u8(1),
        pointerId: le32(4),
        x: f32(8),
        y: f32(12),
      };
    case INPUT_MAGIC.CONTROLLER_MOTION:
      return {
        kind: "controller_motion",
        controller: u8(0),
        motionType: u8(1),
        x: f32(4),
        y: f32(8),
        z: f32(12),
      };
    default: // CONTROLLER_BATTERY
      return { kind: "controller_battery", controller: u8(0), state: u8(1), percent: u8(2) };
  }
}

function packet(
  magic: number,
  bodyLength: number,
  fill: (view: DataView, body: Uint8Array) => void,
): Uint8Array {
  const out = new Uint8Array(8 + bodyLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length - 4, false);
  view.setUint32(4, magic, true);
  fill(new DataView(out.buffer, 8), out.subarray(8));
  return out;
}

/** The packet Moonlight would send for `event` (our test client); `decodeInputPacket` inverts it. */
export function encodeInputEvent(event: InputEvent): Uint8Array {
  switch (event.kind) {
    case "haptics":
      return packet(INPUT_MAGIC.HAPTICS, 2, (v) => v.setUint16(0, event.enabled ? 1 : 0, true));
    case "key":
      return packet(event.down ? INPUT_MAGIC.KEY_DOWN : INPUT_MAGIC.KEY_UP, 6, (v) => {
        v.setUint8(0, event.flags);
        v.setUint16(1, event.keyCode, true);
        v.setUint8(3, event.modifiers);
      });
    case "text": {
      const bytes = new TextEncoder().encode(event.text);
      return packet(INPUT_MAGIC.UTF8_TEXT, bytes.length, (_v, body) => body.set(bytes));
    }
    case "mouse_relative":
      return packet(INPUT_MAGIC.MOUSE_MOVE_RELATIVE, 4, (v) => {
        v.setInt16(0, event.dx, false);
        v.setInt16(2, event.dy, false);
      });
    case "mouse_absolute":
      return packet(INPUT_MAGIC.MOUSE_MOVE_ABSOLUTE, 10, (v) => {
        v.setInt16(0, event.x, false);
        v.setInt16(2, event.y, false);
        v.setUint16(6, event.refWidth - 1, false);
        v.setUint16(8, event.refHeight - 1, false);
      });
    case "mouse_button":
      return packet(
        event.down ? INPUT_MAGIC.MOUSE_BUTTON_DOWN : INPUT_MAGIC.MOUSE_BUTTON_UP,
        1,
        (v) => v.setUint8(0, event.button),
      );
    case "scroll":
      return packet(INPUT_MAGIC.SCROLL, 6, (v) => {
        v.setInt16(0, event.amount, false);
        v.setInt16(2, event.amount, false);
      });
    case "hscroll":
      return packet(INPUT_MAGIC.HSCROLL, 2, (v) => v.setInt16(0, event.amount, false));
    case "gamepad":
      return packet(INPUT_MAGIC.MULTI_CONTROLLER, 26, (v) => {
        v.setUint16(0, 0x1a, true);
        v.setUint16(2, event.controller, true);
        v.setUint16(4, event.activeMask, true);
        v.setUint16(6, 0x14, true);
        v.setUint16(8, event.buttons & 0xffff, true);
        v.setUint8(10, event.leftTrigger);
        v.setUint8(11, event.rightTrigger);
        v.setInt16(12, event.leftStickX, true);
        v.setInt16(14, event.leftStickY, true);
        v.setInt16(16, event.rightStickX, true);
        v.setInt16(18, event.rightStickY, true);
        v.setUint16(20, 0x9c, true);
        v.setUint16(22, event.buttons >>> 16, true);
        v.setUint16(24, 0x55, true);
      });
    case "touch":
      return packet(INPUT_MAGIC.TOUCH, 28, (v) => {
        v.setUint8(0, event.eventType);
        v.setUint32(4, event.pointerId, true);
        v.setFloat32(8, event.x, true);
        v.setFloat32(12, event.y, true);
        v.setFloat32(16, event.pressure, true);
      });
    case "pen":
      return packet(INPUT_MAGIC.PEN, 28, (v) => {
        v.setUint8(0, event.eventType);
        v.setUint8(1, event.tool);
        v.setUint8(2, event.buttons);
        v.setFloat32(4, event.x, true);
        v.setFloat32(8, event.y, true);
        v.setFloat32(12, event.pressure, true);
      });
    case "controller_arrival":
      return packet(INPUT_MAGIC.CONTROLLER_ARRIVAL, 8, (v) => {
        v.setUint8(0, event.controller);
        v.setUint8(1, event.type);
        v.setUint16(2, event.capabilities, true);
        v.setUint32(4, event.buttons, true);
      });
    case "controller_touch":
      return packet(INPUT_MAGIC.CONTROLLER_TOUCH, 20, (v) => {
        v.setUint8(0, event.controller);
        v.setUint8(1, event.eventType);
        v.setUint32(4, event.pointerId, true);
        v.setFloat32(8, event.x, true);
        v.setFloat32(12, event.y, true);
      });
    case "controller_motion":
      return packet(INPUT_MAGIC.CONTROLLER_MOTION, 16, (v) => {
        v.setUint8(0, event.controller);
        v.setUint8(1, event.motionType);
        v.setFloat32(4, event.x, true);
        v.setFloat32(8, event.y, true);
        v.setFloat32(12, event.z, true);
      });
    case "controller_battery":
      return packet(INPUT_MAGIC.CONTROLLER_BATTERY, 4, (v) => {
        v.setUint8(0, event.controller);
        v.setUint8(1, event.state);
        v.setUint8(2, event.percent);
      });
  }
}
