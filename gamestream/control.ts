/**
 * Control-stream messages inside ENet packets (§6.2–6.5), Sunshine mode: every message is a V2 message
 * (`LE16 type ‖ LE16 length ‖ payload`) sealed in the 0x0001 envelope with AES-128-GCM and the
 * SS_ENC_CONTROL_V2 nonce `LE32(seq) ‖ 00×6 ‖ dir ‖ 'C'`. Pure: no sockets, no clocks.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { decodeInputPacket, InputDecodeError } from "./input.ts";
import type { InputEvent } from "./input.ts";

export const CONTROL_TYPE = {
  ENCRYPTED: 0x0001,
  // client → host
  IDR_REQUEST: 0x0302,
  START_B: 0x0307,
  INVALIDATE_REFERENCE_FRAMES: 0x0301,
  PERIODIC_PING: 0x0200,
  INPUT: 0x0206,
  LTR_ACK: 0x0350,
  FEC_STATUS: 0x5502,
  LOSS_STATS: 0x0201,
  // host → client
  RUMBLE: 0x010b,
  TERMINATION: 0x0109,
  HDR_MODE: 0x010e,
  RUMBLE_TRIGGERS: 0x5500,
  MOTION_EVENT_STATE: 0x5501,
} as const;

/** NVST_DISCONN_SERVER_TERMINATED_CLOSED: Moonlight reports a graceful end (§6.5). */
export const TERMINATION_GRACEFUL = 0x80030023;

const ENVELOPE_HEADER = 4 + 4 + 16; // type, length, seq, tag
const V2_HEADER = 4;
/** Larger than any control message (input packets are < 64 B); bounds what we decrypt. */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024;

export type ControlErrorCode = "short" | "not_encrypted" | "length_mismatch" | "tag" | "nested" | "too_large";

export class ControlError extends Error {
  override readonly name = "ControlError";
  constructor(readonly code: ControlErrorCode, message: string) {
    super(message);
  }
}

function nonce(seq: number, direction: "C" | "H"): Uint8Array {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(0, seq >>> 0, true);
  out[10] = direction.charCodeAt(0);
  out[11] = 0x43; // 'C': control stream
  return out;
}

/** Seals our messages and opens the peer's; each direction counts its own sequence from 0 (§6.3). */
export class ControlCipher {
  #sendSeq = 0;
  readonly #key: Uint8Array;
  readonly #sendDir: "C" | "H";
  readonly #receiveDir: "C" | "H";

  constructor(key: Uint8Array, role: "host" | "client") {
    if (key.length !== 16) throw new RangeError("control key must be 16 bytes");
    this.#key = key.slice();
    this.#sendDir = role === "host" ? "H" : "C";
    this.#receiveDir = role === "host" ? "C" : "H";
  }

  seal(type: number, payload: Uint8Array): Uint8Array {
    if (payload.length > MAX_CONTROL_MESSAGE_BYTES) throw new ControlError("too_large", "payload too large");
    const plain = new Uint8Array(V2_HEADER + payload.length);
    const view = new DataView(plain.buffer);
    view.setUint16(0, type, true);
    view.setUint16(2, payload.length, true);
    plain.set(payload, V2_HEADER);
    const seq = this.#sendSeq;
    this.#sendSeq = (this.#sendSeq + 1) >>> 0;
    const cipher = createCipheriv("aes-128-gcm", this.#key, nonce(seq, this.#sendDir));
    const ciphertext = new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]));
    const tag = new Uint8Array(cipher.getAuthTag());
    const out = new Uint8Array(ENVELOPE_HEADER + ciphertext.length);
    const outView = new DataView(out.buffer);
    outView.setUint16(0, CONTROL_TYPE.ENCRYPTED, true);
    outView.setUint16(2, 4 + 16 + ciphertext.length, true);
    outView.setUint32(4, seq, true);
    out.set(tag, 8);
    out.set(ciphertext, ENVELOPE_HEADER);
    return out;
  }

  open(packet: Uint8Array): { type: number; payload: Uint8Array } {
    if (packet.length < ENVELOPE_HEADER + V2_HEADER) throw new ControlError("short", "envelope too short");
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    if (view.getUint16(0, true) !== CONTROL_TYPE.ENCRYPTED) {
      throw new ControlError("not_encrypted", "control message is not an encrypted envelope");
    }
    if (view.getUint16(2, true) + 4 !== packet.length) {
      throw new ControlError("length_mismatch", "envelope length does not match the packet");
    }
    const seq = view.getUint32(4, true);
    const decipher = createDecipheriv("aes-128-gcm", this.#key, nonce(seq, this.#receiveDir));
    decipher.setAuthTag(packet.subarray(8, 24));
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(Buffer.concat([decipher.update(packet.subarray(24)), decipher.final()]));
    } catch {
      throw new ControlError("tag", "control message failed authentication");
    }
    const inner = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
    const type = inner.getUint16(0, true);
    const length = inner.getUint16(2, true);
    if (type === CONTROL_TYPE.ENCRYPTED) throw new ControlError("nested", "nested encrypted envelope");
    if (V2_HEADER + length !== plain.length) {
      throw new ControlError("length_mismatch", "inner length does not match the message");
    }
    return { type, payload: plain.subarray(V2_HEADER) };
  }
}

export type ClientControlMessage =
  | { kind: "idr_request" }
  | { kind: "start_b" }
  | { kind: "invalidate_refs"; first: bigint; last: bigint }
  | { kind: "ping" }
  | { kind: "input"; event: InputEvent }
  | { kind: "ltr_ack"; frame: number }
  | { kind: "fec_status"; frameIndex: number; receivedData: number; totalData: number }
  | { kind: "loss_stats"; lastGoodFrame: bigint }
  | { kind: "malformed"; type: number; reason: string }
  | { kind: "unknown"; type: number };

/** Interprets a decrypted client→host message (§6.4); bad payloads come back as `malformed`, never a throw. */
export function decodeClientMessage(type: number, payload: Uint8Array): ClientControlMessage {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const need = (bytes: number) => payload.length >= bytes;
  switch (type) {
    case CONTROL_TYPE.IDR_REQUEST:
      return { kind: "idr_request" };
    case CONTROL_TYPE.START_B:
      return { kind: "start_b" };
    case CONTROL_TYPE.PERIODIC_PING:
      return { kind: "ping" };
    case CONTROL_TYPE.INVALIDATE_REFERENCE_FRAMES:
      if (!need(16)) return { kind: "malformed", type, reason: "RFI shorter than 16 bytes" };
      return { kind: "invalidate_refs", first: view.getBigUint64(0, true), last: view.getBigUint64(8, true) };
    case CONTROL_TYPE.LTR_ACK:
      if (!need(4)) return { kind: "malformed", type, reason: "LTR ACK shorter than 4 bytes" };
      return { kind: "ltr_ack", frame: view.getUint32(0, true) };
    case CONTROL_TYPE.FEC_STATUS:
      if (!need(21)) return { kind: "malformed", type, reason: "FEC status shorter than 21 bytes" };
      return {
        kind: "fec_status",
        frameIndex: view.getUint32(0, false),
        totalData: view.getUint16(10, false),
        receivedData: view.getUint16(14, false),
      };
    case CONTROL_TYPE.LOSS_STATS:
      if (!need(20)) return { kind: "malformed", type, reason: "loss stats shorter than 20 bytes" };
      return { kind: "loss_stats", lastGoodFrame: view.getBigUint64(12, true) };
    case CONTROL_TYPE.INPUT:
      try {
        return { kind: "input", event: decodeInputPacket(payload) };
      } catch (error) {
        if (error instanceof InputDecodeError) return { kind: "malformed", type, reason: error.message };
        throw error;
      }
    default:
      return { kind: "unknown", type };
  }
}

function bytes(length: number, fill: (view: DataView) => void): Uint8Array {
  const out = new Uint8Array(length);
  fill(new DataView(out.buffer));
  return out;
}

export function terminationPayload(reason = TERMINATION_GRACEFUL): Uint8Array {
  return bytes(4, (v) => v.setUint32(0, reason >>> 0, false));
}

export function rumblePayload(controller: number, lowFrequency: number, highFrequency: number): Uint8Array {
  return bytes(10, (v) => {
    v.setUint32(0, 0x00c0ffee, true);
    v.setUint16(4, controller, true);
    v.setUint16(6, lowFrequency, true);
    v.setUint16(8, highFrequency, true);
  });
}

export function hdrModePayload(enabled: boolean): Uint8Array {
  return Uint8Array.of(enabled ? 1 : 0);
}

export function rumbleTriggersPayload(controller: number, left: number, right: number): Uint8Array {
  return bytes(6, (v) => {
    v.setUint16(0, controller, true);
    v.setUint16(2, left, true);
    v.setUint16(4, right, true);
  });
}

export function motionEventStatePayload(
  controller: number,
  reportRateHz: number,
  motionType: number,
): Uint8Array {
  return bytes(5, (v) => {
    v.setUint16(0, controller, true);
    v.setUint16(2, reportRateHz, true);
    v.setUint8(4, motionType);
  });
}

// Client-side builders (our test client).
export const idrRequestPayload = (): Uint8Array => new Uint8Array(2);
export const startBPayload = (): Uint8Array => new Uint8Array(1);
export const periodicPingPayload = (): Uint8Array => Uint8Array.of(4, 0, 0, 0, 0, 0, 0, 0);
export function invalidateRefsPayload(first: bigint, last: bigint): Uint8Array {
  return bytes(24, (v) => {
    v.setBigUint64(0, first, true);
    v.setBigUint64(8, last, true);
  });
}
