/**
 * Encrypted RTSP (`rtspenc://`, docs/gamestream-protocol.md §5.3): every request and every reply on the RTSP
 * TCP connection is one sealed frame
 *
 *   BE32(0x8000_0000 | L) ‖ BE32(seq) ‖ 16-byte AES-GCM tag ‖ L bytes of AES-128-GCM ciphertext
 *
 * of the complete plaintext RTSP message, keyed with the launch's `rikey`. The 12-byte nonce is
 * `LE32(seq) ‖ 00×6 ‖ direction ‖ 'R'`, direction 'C' for client→host and 'H' for host→client, no AAD.
 * Moonlight numbers its requests 1, 2, 3 … across the handshake's connections (one request per connection) and
 * takes the reply's sequence number from the reply's own header.
 *
 * Pure: bytes in, bytes out. Every failure is an `RtspEncryptionError`; nothing else is thrown for any input.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

export const RTSP_ENCRYPTED_FLAG = 0x8000_0000;
/** Length word, sequence number, tag. */
export const RTSP_ENCRYPTED_HEADER_BYTES = 24;
const TAG_BYTES = 16;
/**
 * Largest ciphertext accepted: the plain parser's head limit (16 KiB) plus its body limit (64 KiB), so a sealed
 * request can say nothing a plain one could not, and a peer can make the host buffer at most ~80 KiB.
 */
export const RTSP_MAX_SEALED_PAYLOAD_BYTES = 16 * 1024 + 64 * 1024;
/** The sequence number is 32 bits; a session never gets near it (a handshake is ~8 messages). */
const MAX_SEQUENCE = 0xffff_ffff;

export type RtspDirection = "client_to_host" | "host_to_client";

export type RtspEncryptionErrorCode =
  /** The length word lacks the 0x8000_0000 bit: a plain-text message where a sealed one is required. */
  | "not_encrypted"
  /** The announced ciphertext is empty or longer than RTSP_MAX_SEALED_PAYLOAD_BYTES. */
  | "bad_length"
  /** Fewer bytes than the header announces. */
  | "truncated"
  /** More bytes than the header announces (one message per connection). */
  | "trailing_bytes"
  /** Wrong key, wrong direction, or any bit of header, tag or ciphertext changed. */
  | "authentication_failed"
  /** A sequence number not above the last one accepted in this session. */
  | "replayed"
  | "sequence_exhausted";

export class RtspEncryptionError extends Error {
  override readonly name = "RtspEncryptionError";
  constructor(readonly code: RtspEncryptionErrorCode, detail: string) {
    super(`${code}: ${detail}`);
  }
}

function concat(first: Uint8Array, second: Uint8Array): Uint8Array {
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}

function checkKey(key: Uint8Array): void {
  if (key.length !== 16) throw new RangeError(`the RTSP key must be 16 bytes, got ${key.length}`);
}

/** `LE32(seq) ‖ 00×6 ‖ 'C'|'H' ‖ 'R'`. */
export function rtspNonce(sequence: number, direction: RtspDirection): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setUint32(0, sequence >>> 0, true);
  nonce[10] = direction === "client_to_host" ? 0x43 : 0x48;
  nonce[11] = 0x52;
  return nonce;
}

/** One sealed frame for `plaintext` (a whole serialized RTSP message). */
export function sealRtspMessage(
  key: Uint8Array,
  sequence: number,
  direction: RtspDirection,
  plaintext: Uint8Array,
): Uint8Array {
  checkKey(key);
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > MAX_SEQUENCE) {
    throw new RangeError(`sequence ${sequence} is not a u32`);
  }
  if (plaintext.length === 0 || plaintext.length > RTSP_MAX_SEALED_PAYLOAD_BYTES) {
    throw new RangeError(`an RTSP message of ${plaintext.length} bytes cannot be sealed`);
  }
  const cipher = createCipheriv("aes-128-gcm", key, rtspNonce(sequence, direction), {
    authTagLength: TAG_BYTES,
  });
  const ciphertext = concat(cipher.update(plaintext), cipher.final());
  const frame = new Uint8Array(RTSP_ENCRYPTED_HEADER_BYTES + ciphertext.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, (RTSP_ENCRYPTED_FLAG | ciphertext.length) >>> 0, false);
  view.setUint32(4, sequence >>> 0, false);
  frame.set(cipher.getAuthTag(), 8);
  frame.set(ciphertext, RTSP_ENCRYPTED_HEADER_BYTES);
  return frame;
}

/**
 * The whole frame's length from its first 4 bytes, or null while fewer have arrived. Lets a reader know how much
 * to wait for before anything is decrypted. Throws `not_encrypted` / `bad_length`.
 */
export function sealedFrameLength(prefix: Uint8Array): number | null {
  if (prefix.length < 4) return null;
  const word = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0, false);
  if ((word & RTSP_ENCRYPTED_FLAG) === 0) {
    throw new RtspEncryptionError("not_encrypted", "the length word lacks the encrypted-message bit");
  }
  const length = (word & ~RTSP_ENCRYPTED_FLAG) >>> 0;
  if (length === 0 || length > RTSP_MAX_SEALED_PAYLOAD_BYTES) {
    throw new RtspEncryptionError(
      "bad_length",
      `${length} bytes of ciphertext; 1..${RTSP_MAX_SEALED_PAYLOAD_BYTES} accepted`,
    );
  }
  return RTSP_ENCRYPTED_HEADER_BYTES + length;
}

/** Opens exactly one frame (no bytes before or after it). Stateless: replay is the session cipher's job. */
export function openRtspMessage(
  key: Uint8Array,
  direction: RtspDirection,
  frame: Uint8Array,
): { sequence: number; plaintext: Uint8Array } {
  checkKey(key);
  const total = sealedFrameLength(frame);
  if (total === null || frame.length < total) {
    throw new RtspEncryptionError("truncated", `${frame.length} bytes, the frame needs ${total ?? "≥ 4"}`);
  }
  if (frame.length > total) {
    throw new RtspEncryptionError("trailing_bytes", `${frame.length - total} bytes after the frame`);
  }
  const sequence = new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(4, false);
  const decipher = createDecipheriv("aes-128-gcm", key, rtspNonce(sequence, direction), {
    authTagLength: TAG_BYTES,
  });
  decipher.setAuthTag(frame.subarray(8, RTSP_ENCRYPTED_HEADER_BYTES));
  try {
    const head = decipher.update(frame.subarray(RTSP_ENCRYPTED_HEADER_BYTES));
    const plaintext = concat(head, decipher.final());
    return { sequence, plaintext };
  } catch {
    throw new RtspEncryptionError("authentication_failed", "the tag does not match");
  }
}

/**
 * One launch's encrypted RTSP channel, host side: opens the client's requests (each sequence number must be
 * above the last one accepted, so a recorded request cannot be played again) and seals replies numbered 1, 2, 3 ….
 */
export class RtspHostCipher {
  readonly #key: Uint8Array;
  #lastRequestSequence = 0;
  #replySequence = 0;

  constructor(key: Uint8Array) {
    checkKey(key);
    this.#key = key.slice();
  }

  /** Opens a request frame; on any error the channel's state is unchanged. */
  openRequest(frame: Uint8Array): Uint8Array {
    const { sequence, plaintext } = openRtspMessage(this.#key, "client_to_host", frame);
    // Checked after authentication, so a forged sequence number cannot move the window.
    if (sequence <= this.#lastRequestSequence) {
      throw new RtspEncryptionError(
        "replayed",
        `sequence ${sequence}, last accepted ${this.#lastRequestSequence}`,
      );
    }
    this.#lastRequestSequence = sequence;
    return plaintext;
  }

  sealReply(plaintext: Uint8Array): Uint8Array {
    if (this.#replySequence >= MAX_SEQUENCE) {
      throw new RtspEncryptionError("sequence_exhausted", "no reply sequence number left");
    }
    this.#replySequence++;
    return sealRtspMessage(this.#key, this.#replySequence, "host_to_client", plaintext);
  }
}
