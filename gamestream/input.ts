/**
 * Moonlight input packets (payload of control type 0x0206, docs/gamestream-protocol.md §6.6) ⇄ one
 * `InputEvent` union. Every packet starts with `BE32 size` (bytes after this field) and `LE32 magic`; only
 * the Gen ≥ 5 magics that Sunshine accepts are understood. Multi-byte fields are little-endian unless the
 * table says BE; floats are LE. Pure: the decoder never trusts a length it has not checked and throws only
 * `InputDecodeError`.
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

/** Key modifier bits (`modifiers` of a key event). */
export const KEY_MODIFIER = { SHIFT: 0x01, CTRL: 0x02, ALT: 0x04, META: 0x08 } as const;

/** Mouse buttons as Moonlight numbers them. */
export const MOUSE_BUTTON = { LEFT: 1, MIDDLE: 2, RIGHT: 3, X1: 4, X2: 5 } as const;

/** Gamepad button bits of `buttons` (low 16 from buttonFlags, high 16 from Sunshine's buttonFlags2). */
export const GAMEPAD_BUTTON = {
  UP: 0x0001,
  DOWN: 0x0002,
  LEFT: 0x0004,
  RIGHT: 0x0008,
  START: 0x0010,
  BACK: 0x0020,
  LS_CLICK: 0x0040,
  RS_CLICK: 0x0080,
  LB: 0x0100,
  RB: 0x0200,
  SPECIAL: 0x0400,
  A: 0x1000,
  B: 0x2000,
  X: 0x4000,
  Y: 0x8000,
  PADDLE1: 0x010000,
  PADDLE2: 0x020000,
  PADDLE3: 0x040000,
  PADDLE4: 0x080000,
  TOUCHPAD: 0x100000,
  MISC: 0x200000,
} as const;

/** Touch and pen `eventType` values. */
export const TOUCH_EVENT = {
  HOVER: 0,
  DOWN: 1,
  UP: 2,
  MOVE: 3,
  CANCEL: 4,
  BUTTON_ONLY: 5,
  HOVER_LEAVE: 6,
  CANCEL_ALL: 7,
} as const;

/**
 * One decoded input packet. Values are the wire's, unscaled: coordinates of touch/pen are 0..1 of the video
 * area, mouse_absolute is relative to refWidth×refHeight. Floats are passed through as sent (they may be NaN or
 * infinite); an injection backend clamps them.
 */
export type InputEvent =
  | { kind: "haptics"; enabled: boolean }
  | {
    kind: "key";
    down: boolean;
    /** Win32 virtual-key code; Moonlight may set 0x8000, Sunshine uses the low byte. */
    keyCode: number;
    modifiers: number;
    /** 0x01: the key code is not normalised to a US layout (Sunshine extension). */
    flags: number;
  }
  | { kind: "text"; text: string }
  | { kind: "mouse_relative"; dx: number; dy: number }
  | { kind: "mouse_absolute"; x: number; y: number; refWidth: number; refHeight: number }
  | { kind: "mouse_button"; down: boolean; button: number }
  /** Vertical wheel; 120 is one notch, positive is away from the user. */
  | { kind: "scroll"; amount: number }
  | { kind: "hscroll"; amount: number }
  | {
    kind: "gamepad";
    controller: number;
    activeMask: number;
    /** 32 bits: buttonFlags | buttonFlags2 << 16. */
    buttons: number;
    leftTrigger: number;
    rightTrigger: number;
    leftStickX: number;
    leftStickY: number;
    rightStickX: number;
    rightStickY: number;
  }
  | {
    kind: "touch";
    eventType: number;
    /** Degrees; 0xFFFF when unknown. */
    rotation: number;
    pointerId: number;
    x: number;
    y: number;
    pressureOrDistance: number;
    contactAreaMajor: number;
    contactAreaMinor: number;
  }
  | {
    kind: "pen";
    eventType: number;
    /** 0 unknown, 1 pen, 2 eraser. */
    tool: number;
    buttons: number;
    x: number;
    y: number;
    pressureOrDistance: number;
    /** Degrees; 0xFFFF when unknown. */
    rotation: number;
    /** 0..90 degrees; 0xFF when unknown. */
    tilt: number;
    contactAreaMajor: number;
    contactAreaMinor: number;
  }
  | { kind: "controller_arrival"; controller: number; type: number; capabilities: number; buttons: number }
  | {
    kind: "controller_touch";
    controller: number;
    eventType: number;
    touchpadIndex: number;
    pointerId: number;
    x: number;
    y: number;
    pressure: number;
  }
  | { kind: "controller_motion"; controller: number; motionType: number; x: number; y: number; z: number }
  | { kind: "controller_battery"; controller: number; state: number; percent: number };

export type InputEventKind = InputEvent["kind"];

export type InputDecodeErrorCode = "short" | "size_mismatch" | "unknown_magic" | "bad_text";

export class InputDecodeError extends Error {
  override readonly name = "InputDecodeError";
  constructor(readonly code: InputDecodeErrorCode, message: string) {
    super(message);
  }
}

/**
 * Bytes after the 8-byte header each magic needs (`size` − 4 in the §6.6 table). Longer bodies are accepted and
 * the tail ignored, as Sunshine does, so a client that grows a struct keeps working.
 */
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

// ignoreBOM: a text packet carrying U+FEFF must decode to U+FEFF, not to "".
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

export function decodeInputPacket(packet: Uint8Array): InputEvent {
  if (packet.length < 8) throw new InputDecodeError("short", `input packet of ${packet.length} bytes`);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const size = view.getUint32(0, false);
  if (size !== packet.length - 4) {
    throw new InputDecodeError(
      "size_mismatch",
      `size field ${size} but ${packet.length - 4} bytes follow it`,
    );
  }
  const magic = view.getUint32(4, true);
  const body = packet.length - 8;
  if (magic === INPUT_MAGIC.UTF8_TEXT) {
    if (body < 1 || body > MAX_TEXT_BYTES) {
      throw new InputDecodeError("bad_text", `text of ${body} bytes (1..${MAX_TEXT_BYTES})`);
    }
    try {
      return { kind: "text", text: utf8Strict.decode(packet.subarray(8)) };
    } catch {
      throw new InputDecodeError("bad_text", "text is not valid UTF-8");
    }
  }
  const expected = BODY_LENGTH[magic];
  if (expected === undefined) {
    throw new InputDecodeError("unknown_magic", `unknown input magic ${hex(magic)}`);
  }
  if (body < expected) {
    throw new InputDecodeError("short", `input ${hex(magic)} has ${body} body bytes, needs ${expected}`);
  }
  const u8 = (o: number) => view.getUint8(8 + o);
  const le16 = (o: number) => view.getUint16(8 + o, true);
  const le16s = (o: number) => view.getInt16(8 + o, true);
  const be16 = (o: number) => view.getUint16(8 + o, false);
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
        keyCode: le16(1),
        modifiers: u8(3),
        flags: u8(0),
      };
    case INPUT_MAGIC.MOUSE_MOVE_RELATIVE:
      return { kind: "mouse_relative", dx: be16s(0), dy: be16s(2) };
    case INPUT_MAGIC.MOUSE_MOVE_ABSOLUTE:
      return {
        kind: "mouse_absolute",
        x: be16s(0),
        y: be16s(2),
        refWidth: be16(6) + 1,
        refHeight: be16(8) + 1,
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
        rotation: le16(2),
        pointerId: le32(4),
        x: f32(8),
        y: f32(12),
        pressureOrDistance: f32(16),
        contactAreaMajor: f32(20),
        contactAreaMinor: f32(24),
      };
    case INPUT_MAGIC.PEN:
      return {
        kind: "pen",
        eventType: u8(0),
        tool: u8(1),
        buttons: u8(2),
        x: f32(4),
        y: f32(8),
        pressureOrDistance: f32(12),
        rotation: le16(16),
        tilt: u8(18),
        contactAreaMajor: f32(20),
        contactAreaMinor: f32(24),
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
        touchpadIndex: u8(3),
        pointerId: le32(4),
        x: f32(8),
        y: f32(12),
        pressure: f32(16),
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
    default: // CONTROLLER_BATTERY, the only magic left in BODY_LENGTH
      return { kind: "controller_battery", controller: u8(0), state: u8(1), percent: u8(2) };
  }
}

function packet(
  magic: number,
  bodyLength: number,
  fill: (body: DataView, bytes: Uint8Array) => void,
): Uint8Array {
  const out = new Uint8Array(8 + bodyLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.length - 4, false);
  view.setUint32(4, magic, true);
  fill(new DataView(out.buffer, 8), out.subarray(8));
  return out;
}

/**
 * The packet Moonlight would send for `event` (our test client); `decodeInputPacket` inverts it. Integer fields
 * are truncated to their wire width, so only in-range events round-trip; text longer than 32 UTF-8 bytes throws.
 */
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
      if (bytes.length < 1 || bytes.length > MAX_TEXT_BYTES) {
        throw new RangeError(`text of ${bytes.length} UTF-8 bytes (1..${MAX_TEXT_BYTES})`);
      }
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
        v.setUint16(2, event.rotation, true);
        v.setUint32(4, event.pointerId, true);
        v.setFloat32(8, event.x, true);
        v.setFloat32(12, event.y, true);
        v.setFloat32(16, event.pressureOrDistance, true);
        v.setFloat32(20, event.contactAreaMajor, true);
        v.setFloat32(24, event.contactAreaMinor, true);
      });
    case "pen":
      return packet(INPUT_MAGIC.PEN, 28, (v) => {
        v.setUint8(0, event.eventType);
        v.setUint8(1, event.tool);
        v.setUint8(2, event.buttons);
        v.setFloat32(4, event.x, true);
        v.setFloat32(8, event.y, true);
        v.setFloat32(12, event.pressureOrDistance, true);
        v.setUint16(16, event.rotation, true);
        v.setUint8(18, event.tilt);
        v.setFloat32(20, event.contactAreaMajor, true);
        v.setFloat32(24, event.contactAreaMinor, true);
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
        v.setUint8(3, event.touchpadIndex);
        v.setUint32(4, event.pointerId, true);
        v.setFloat32(8, event.x, true);
        v.setFloat32(12, event.y, true);
        v.setFloat32(16, event.pressure, true);
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

/** The ENet channel Moonlight uses for `event` in Sunshine mode (§6.1, last column of §6.6). */
export function inputChannel(event: InputEvent): number {
  switch (event.kind) {
    case "haptics":
      return 0;
    case "key":
      return 2;
    case "mouse_relative":
    case "mouse_absolute":
    case "mouse_button":
    case "scroll":
    case "hscroll":
      return 3;
    case "pen":
      return 4;
    case "touch":
      return 5;
    case "text":
      return 6;
    case "gamepad":
    case "controller_arrival":
    case "controller_touch":
    case "controller_battery":
      return 0x10 + (event.controller & 0x0f);
    case "controller_motion":
      return 0x20 + (event.controller & 0x0f);
  }
}

/** Whether Moonlight sends `event` reliably: hover/move touch and pen events and non-zero motion are not. */
export function inputReliable(event: InputEvent): boolean {
  switch (event.kind) {
    case "touch":
    case "pen":
      return event.eventType !== TOUCH_EVENT.HOVER && event.eventType !== TOUCH_EVENT.MOVE;
    case "controller_motion":
      return event.x === 0 && event.y === 0 && event.z === 0;
    default:
      return true;
  }
}
