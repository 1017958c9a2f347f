/**
 * Control-stream messages inside ENet packets (docs/gamestream-protocol.md §6.2–6.5), Sunshine mode
 * (appversion 7.1.431): every message is a V2 message (`LE16 type ‖ LE16 length ‖ payload`) sealed in the
 * 0x0001 envelope (`LE16 0x0001 ‖ LE16 length ‖ LE32 seq ‖ tag(16) ‖ ciphertext`) with AES-128-GCM under the
 * rikey and the SS_ENC_CONTROL_V2 nonce `LE32(seq) ‖ 00×6 ‖ dir ‖ 'C'`. Pure: no sockets, no clocks.
 */
import { Buffer } from "node:buffer";
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
/** The envelope's LE16 length (seq + tag + V2 header + payload) caps a payload at 65535 − 24 bytes. */
export const MAX_CONTROL_PAYLOAD_BYTES = 0xffff - 4 - 16 - V2_HEADER;

export type ControlErrorCode =
  | "short"
  | "not_encrypted"
  | "length_mismatch"
  | "tag"
  | "nested"
  | "too_large"
  | "sequence_exhausted"
  | "replayed";

export class ControlError extends Error {
  override readonly name = "ControlError";
  constructor(readonly code: ControlErrorCode, message: string) {
    super(message);
  }
}

function nonce(seq: number, direction: "C" | "H"): Uint8Array {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(0, seq, true);
  out[10] = direction.charCodeAt(0);
  out[11] = 0x43; // 'C': control stream
  return out;
}

/**
 * Sequence numbers remembered below the newest one opened. One counter spans every ENet channel, and a message held
 * back by a retransmit arrives after newer ones on other channels: 8192 covers several seconds of 1 kHz mouse
 * input behind one lost datagram, for 1 KiB per connection. Anything older is refused like a replay.
 */
export const CONTROL_REPLAY_WINDOW = 8192;

/** Which sequence numbers were opened already (an anti-replay window, as IPsec and DTLS keep one). */
class ReplayWindow {
  #newest = -1;
  readonly #seen = new Uint32Array(CONTROL_REPLAY_WINDOW / 32);

  isFresh(seq: number): boolean {
    if (seq > this.#newest) return true;
    if (this.#newest - seq >= CONTROL_REPLAY_WINDOW) return false;
    const slot = seq % CONTROL_REPLAY_WINDOW;
    return (this.#seen[slot >>> 5] & (1 << (slot & 31))) === 0;
  }

  /** Call only for an authenticated `seq` that `isFresh` accepted. */
  mark(seq: number): void {
    if (seq > this.#newest) {
      if (seq - this.#newest >= CONTROL_REPLAY_WINDOW) {
        this.#seen.fill(0);
      } else {
        for (let s = this.#newest + 1; s < seq; s++) {
          const slot = s % CONTROL_REPLAY_WINDOW;
          this.#seen[slot >>> 5] &= ~(1 << (slot & 31));
        }
      }
      this.#newest = seq;
    }
    const slot = seq % CONTROL_REPLAY_WINDOW;
    this.#seen[slot >>> 5] |= 1 << (slot & 31);
  }
}

/**
 * Seals our messages and opens the peer's. Each direction counts its own sequence from 0 (§6.3). The sequence is
 * part of the GCM nonce, so it is authenticated: `open` refuses a sequence it opened before or one older than the
 * replay window (ENet delivers each message once, but an attacker who captured an envelope can wrap it in a fresh
 * ENet command). Sunshine and Moonlight do not check this; a genuine peer never repeats a sequence.
 */
export class ControlCipher {
  #sendSeq = 0;
  readonly #opened = new ReplayWindow();
  readonly #key: Uint8Array;
  readonly #sendDirection: "C" | "H";
  readonly #receiveDirection: "C" | "H";

  constructor(key: Uint8Array, role: "host" | "client") {
    if (key.length !== 16) throw new RangeError("control key must be 16 bytes");
    this.#key = key.slice();
    this.#sendDirection = role === "host" ? "H" : "C";
    this.#receiveDirection = role === "host" ? "C" : "H";
  }

  /** Next sequence number `seal` will use. */
  get sendSequence(): number {
    return this.#sendSeq;
  }

  seal(type: number, payload: Uint8Array): Uint8Array {
    if (payload.length > MAX_CONTROL_PAYLOAD_BYTES) {
      throw new ControlError("too_large", `payload of ${payload.length} bytes`);
    }
    // A wrapped 32-bit sequence would reuse a GCM nonce under the same key.
    if (this.#sendSeq > 0xffffffff) {
      throw new ControlError("sequence_exhausted", "control sequence exhausted");
    }
    const plain = new Uint8Array(V2_HEADER + payload.length);
    const view = new DataView(plain.buffer);
    view.setUint16(0, type, true);
    view.setUint16(2, payload.length, true);
    plain.set(payload, V2_HEADER);
    const seq = this.#sendSeq++;
    const cipher = createCipheriv("aes-128-gcm", this.#key, nonce(seq, this.#sendDirection));
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    const out = new Uint8Array(ENVELOPE_HEADER + ciphertext.length);
    const outView = new DataView(out.buffer);
    outView.setUint16(0, CONTROL_TYPE.ENCRYPTED, true);
    outView.setUint16(2, 4 + 16 + ciphertext.length, true);
    outView.setUint32(4, seq, true);
    out.set(cipher.getAuthTag(), 8);
    out.set(ciphertext, ENVELOPE_HEADER);
    return out;
  }

  open(packet: Uint8Array): { type: number; payload: Uint8Array } {
    if (packet.length < ENVELOPE_HEADER + V2_HEADER) {
      throw new ControlError("short", `envelope of ${packet.length} bytes`);
    }
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    if (view.getUint16(0, true) !== CONTROL_TYPE.ENCRYPTED) {
      throw new ControlError("not_encrypted", "control message is not an encrypted envelope");
    }
    if (view.getUint16(2, true) + 4 !== packet.length) {
      throw new ControlError("length_mismatch", "envelope length does not match the packet");
    }
    const seq = view.getUint32(4, true);
    const decipher = createDecipheriv("aes-128-gcm", this.#key, nonce(seq, this.#receiveDirection));
    decipher.setAuthTag(packet.subarray(8, ENVELOPE_HEADER));
    let plain: Uint8Array;
    try {
      plain = new Uint8Array(
        Buffer.concat([decipher.update(packet.subarray(ENVELOPE_HEADER)), decipher.final()]),
      );
    } catch {
      throw new ControlError("tag", "control message failed authentication");
    }
    // Checked after the tag, so the counts tell forgeries (tag) from captured genuine messages (replayed).
    if (!this.#opened.isFresh(seq)) {
      throw new ControlError("replayed", `control sequence ${seq} was opened before or is too old`);
    }
    this.#opened.mark(seq);
    const inner = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
    const type = inner.getUint16(0, true);
    if (type === CONTROL_TYPE.ENCRYPTED) throw new ControlError("nested", "nested encrypted envelope");
    if (V2_HEADER + inner.getUint16(2, true) !== plain.length) {
      throw new ControlError("length_mismatch", "inner length does not match the message");
    }
    return { type, payload: plain.subarray(V2_HEADER) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client → host

export interface FecStatus {
  frameIndex: number;
  highestReceivedSequence: number;
  nextContiguousSequence: number;
  missingBeforeHighest: number;
  totalData: number;
  totalParity: number;
  receivedData: number;
  receivedParity: number;
  fecPercentage: number;
  blockIndex: number;
  blockCount: number;
}

export type ClientControlMessage =
  | { kind: "idr_request" }
  | { kind: "start_b" }
  | { kind: "invalidate_refs"; first: bigint; last: bigint }
  | { kind: "ping" }
  | { kind: "input"; event: InputEvent }
  | { kind: "ltr_ack"; frame: number }
  | ({ kind: "fec_status" } & FecStatus)
  | { kind: "loss_stats"; lastGoodFrame: bigint }
  /** A known type whose payload is too short, or an input packet that does not decode. */
  | { kind: "malformed"; type: number; reason: string }
  | { kind: "unknown"; type: number };

/** Interprets a decrypted client→host message (§6.4); bad payloads come back as `malformed`, never a throw. */
export function decodeClientMessage(type: number, payload: Uint8Array): ClientControlMessage {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const short = (name: string, bytes: number): ClientControlMessage | null =>
    payload.length < bytes
      ? { kind: "malformed", type, reason: `${name} shorter than ${bytes} bytes` }
      : null;
  switch (type) {
    case CONTROL_TYPE.IDR_REQUEST:
      return { kind: "idr_request" };
    case CONTROL_TYPE.START_B:
      return { kind: "start_b" };
    case CONTROL_TYPE.PERIODIC_PING:
      return { kind: "ping" }; // payload ignored: Moonlight leaves two of its bytes uninitialised (§13.5)
    case CONTROL_TYPE.INVALIDATE_REFERENCE_FRAMES:
      return short("RFI", 16) ??
        { kind: "invalidate_refs", first: view.getBigUint64(0, true), last: view.getBigUint64(8, true) };
    case CONTROL_TYPE.LTR_ACK:
      return short("LTR ACK", 4) ?? { kind: "ltr_ack", frame: view.getUint32(0, true) };
    case CONTROL_TYPE.FEC_STATUS: // the one big-endian message
      return short("FEC status", 21) ?? {
        kind: "fec_status",
        frameIndex: view.getUint32(0),
        highestReceivedSequence: view.getUint16(4),
        nextContiguousSequence: view.getUint16(6),
        missingBeforeHighest: view.getUint16(8),
        totalData: view.getUint16(10),
        totalParity: view.getUint16(12),
        receivedData: view.getUint16(14),
        receivedParity: view.getUint16(16),
        fecPercentage: view.getUint8(18),
        blockIndex: view.getUint8(19),
        blockCount: view.getUint8(20),
      };
    case CONTROL_TYPE.LOSS_STATS:
      return short("loss stats", 20) ?? { kind: "loss_stats", lastGoodFrame: view.getBigUint64(12, true) };
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

/** Start A in Sunshine mode (§6.4). */
export const idrRequestPayload = (): Uint8Array => new Uint8Array(2);
export const startBPayload = (): Uint8Array => new Uint8Array(1);
/** `LE16 4, LE32 0`, then the two bytes Moonlight leaves uninitialised, zeroed. */
export const periodicPingPayload = (): Uint8Array => Uint8Array.of(4, 0, 0, 0, 0, 0, 0, 0);

export function invalidateRefsPayload(first: bigint | number, last: bigint | number): Uint8Array {
  return bytes(24, (v) => {
    v.setBigUint64(0, BigInt(first), true);
    v.setBigUint64(8, BigInt(last), true);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Host → client

/** SS_HDR_METADATA (§6.4): chromaticities normalised to 50000, luminances in nits except the minimum (1/10000). */
export interface HdrMetadata {
  displayPrimaries: readonly [{ x: number; y: number }, { x: number; y: number }, { x: number; y: number }];
  whitePoint: { x: number; y: number };
  maxDisplayLuminance: number;
  minDisplayLuminance: number;
  maxContentLightLevel: number;
  maxFrameAverageLightLevel: number;
  maxFullFrameLuminance: number;
}

const HDR_METADATA_BYTES = 26;

export type HostControlMessage =
  | { kind: "rumble"; controller: number; lowFrequency: number; highFrequency: number }
  /** `extended`: the BE32 HRESULT form; otherwise the older LE16 reason (§6.5). */
  | { kind: "termination"; reason: number; extended: boolean }
  | { kind: "hdr_mode"; enabled: boolean; metadata: HdrMetadata | null }
  | { kind: "rumble_triggers"; controller: number; left: number; right: number }
  | { kind: "motion_event_state"; controller: number; reportRateHz: number; motionType: number }
  | { kind: "malformed"; type: number; reason: string }
  | { kind: "unknown"; type: number };

export function terminationPayload(reason: number = TERMINATION_GRACEFUL): Uint8Array {
  return bytes(4, (v) => v.setUint32(0, reason >>> 0, false));
}

export function rumblePayload(controller: number, lowFrequency: number, highFrequency: number): Uint8Array {
  return bytes(10, (v) => {
    v.setUint32(0, 0x00c0ffee, true); // ignored by clients; Sunshine's filler
    v.setUint16(4, controller, true);
    v.setUint16(6, lowFrequency, true);
    v.setUint16(8, highFrequency, true);
  });
}

/** Without metadata this is the 1-byte GFE form; with it, Sunshine's 27 bytes. */
export function hdrModePayload(enabled: boolean, metadata?: HdrMetadata): Uint8Array {
  if (!metadata) return Uint8Array.of(enabled ? 1 : 0);
  return bytes(1 + HDR_METADATA_BYTES, (v) => {
    v.setUint8(0, enabled ? 1 : 0);
    const fields = [
      ...metadata.displayPrimaries.flatMap((p) => [p.x, p.y]),
      metadata.whitePoint.x,
      metadata.whitePoint.y,
      metadata.maxDisplayLuminance,
      metadata.minDisplayLuminance,
      metadata.maxContentLightLevel,
      metadata.maxFrameAverageLightLevel,
      metadata.maxFullFrameLuminance,
    ];
    fields.forEach((value, i) => v.setUint16(1 + 2 * i, value, true));
  });
}

export function rumbleTriggersPayload(controller: number, left: number, right: number): Uint8Array {
  return bytes(6, (v) => {
    v.setUint16(0, controller, true);
    v.setUint16(2, left, true);
    v.setUint16(4, right, true);
  });
}

/** motionType 1 accelerometer, 2 gyroscope; a rate of 0 stops the reports. */
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

/** Interprets a decrypted host→client message (our test client); never throws. */
export function decodeHostMessage(type: number, payload: Uint8Array): HostControlMessage {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const short = (name: string, bytes: number): HostControlMessage | null =>
    payload.length < bytes
      ? { kind: "malformed", type, reason: `${name} shorter than ${bytes} bytes` }
      : null;
  const le16 = (at: number) => view.getUint16(at, true);
  switch (type) {
    case CONTROL_TYPE.RUMBLE:
      return short("rumble", 10) ??
        { kind: "rumble", controller: le16(4), lowFrequency: le16(6), highFrequency: le16(8) };
    case CONTROL_TYPE.TERMINATION:
      if (payload.length >= 4) return { kind: "termination", reason: view.getUint32(0), extended: true };
      return short("termination", 2) ?? { kind: "termination", reason: le16(0), extended: false };
    case CONTROL_TYPE.HDR_MODE: {
      const tooShort = short("HDR mode", 1);
      if (tooShort) return tooShort;
      let metadata: HdrMetadata | null = null;
      if (payload.length >= 1 + HDR_METADATA_BYTES) {
        const at = (i: number) => le16(1 + 2 * i);
        metadata = {
          displayPrimaries: [{ x: at(0), y: at(1) }, { x: at(2), y: at(3) }, { x: at(4), y: at(5) }],
          whitePoint: { x: at(6), y: at(7) },
          maxDisplayLuminance: at(8),
          minDisplayLuminance: at(9),
          maxContentLightLevel: at(10),
          maxFrameAverageLightLevel: at(11),
          maxFullFrameLuminance: at(12),
        };
      }
      return { kind: "hdr_mode", enabled: payload[0] !== 0, metadata };
    }
    case CONTROL_TYPE.RUMBLE_TRIGGERS:
      return short("rumble triggers", 6) ??
        { kind: "rumble_triggers", controller: le16(0), left: le16(2), right: le16(4) };
    case CONTROL_TYPE.MOTION_EVENT_STATE:
      return short("motion event state", 5) ??
        { kind: "motion_event_state", controller: le16(0), reportRateHz: le16(2), motionType: payload[4] };
    default:
      return { kind: "unknown", type };
  }
}
