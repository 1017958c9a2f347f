// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  openRtspMessage,
  RTSP_ENCRYPTED_HEADER_BYTES,
  RTSP_MAX_SEALED_PAYLOAD_BYTES,
  RtspEncryptionError,
  type RtspEncryptionErrorCode,
  RtspHostCipher,
  rtspNonce,
  sealedFrameLength,
  sealRtspMessage,
} from "./rtsp_encryption.ts";

const encoder = new TextEncoder();
const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const OPTIONS = encoder.encode(
  "OPTIONS rtspenc://127.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 127.0.0.1\r\n\r\n",
);

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) => Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));

function errorCode(run: () => unknown): RtspEncryptionErrorCode | "no error" {
  try {
    run();
    return "no error";
  } catch (error) {
    if (error instanceof RtspEncryptionError) return error.code;
    throw error; // anything else fails the test
  }
}

// Computed with Python's `cryptography` AESGCM (key 00..0f, sequence 1, no AAD) and the layout of §5.3, so the
// vector is independent of this module and of the test client.
const VECTOR_CLIENT_SEQ1 =
  "800000600000000143f074f76d6addbc55750770689fc38f9fe452003a42126629e9a38df3e5ba69a1" +
  "abdaee48b4087f9b128c3b95878598383099a96655636896ac6da0efbb436ac2aeceac562622b5dcf8adf56d99249413ba738cea13" +
  "18f3266c1cfa765403bcd44d456c549b9a459a4a9180ecf2b073";
const VECTOR_HOST_SEQ1 =
  "8000006000000001e6ca73c3a2e196c57a497a04d5b123477d0c75ad5a58627b1d80c68e9abb548f663d652b" +
  "4ad1315a53393ad9686d7d8ce184a2a59af37b3f57967b0a0eafd73d112bf2c21c5c4e6cf197ac76d6668f87f3df595a957eb5a356ff" +
  "fded79c4532fd16aa7cc3f81d98e78e0c4a9d20e3e5e";

Deno.test("rtsp_encryption: nonce layout is LE32(seq) ‖ 00×6 ‖ direction ‖ 'R'", () => {
  assertEquals(hex(rtspNonce(0x01020304, "client_to_host")), "040302010000000000004352");
  assertEquals(hex(rtspNonce(1, "host_to_client")), "010000000000000000004852");
});

Deno.test("rtsp_encryption: sealing matches an independently computed vector in both directions", () => {
  assertEquals(hex(sealRtspMessage(KEY, 1, "client_to_host", OPTIONS)), VECTOR_CLIENT_SEQ1);
  assertEquals(hex(sealRtspMessage(KEY, 1, "host_to_client", OPTIONS)), VECTOR_HOST_SEQ1);
  const opened = openRtspMessage(KEY, "host_to_client", fromHex(VECTOR_HOST_SEQ1));
  assertEquals([opened.sequence, hex(opened.plaintext)], [1, hex(OPTIONS)]);
  assertEquals(sealedFrameLength(fromHex(VECTOR_CLIENT_SEQ1).subarray(0, 4)), 24 + OPTIONS.length);
});

Deno.test("rtsp_encryption: wrong direction, wrong key, plain text, bad lengths are typed errors", () => {
  const frame = sealRtspMessage(KEY, 7, "client_to_host", OPTIONS);
  assertEquals(errorCode(() => openRtspMessage(KEY, "host_to_client", frame)), "authentication_failed");
  const otherKey = KEY.map((b) => b ^ 0xff);
  assertEquals(errorCode(() => openRtspMessage(otherKey, "client_to_host", frame)), "authentication_failed");
  assertEquals(errorCode(() => openRtspMessage(KEY, "client_to_host", OPTIONS)), "not_encrypted");
  assertEquals(errorCode(() => sealedFrameLength(fromHex("80000000"))), "bad_length");
  assertEquals(
    errorCode(() =>
      sealedFrameLength(fromHex((0x8000_0000 + RTSP_MAX_SEALED_PAYLOAD_BYTES + 1).toString(16)))
    ),
    "bad_length",
  );
  assertEquals(sealedFrameLength(frame.subarray(0, 3)), null);
  assertEquals(errorCode(() => openRtspMessage(KEY, "client_to_host", frame.subarray(0, 3))), "truncated");
  assertThrows(() => sealRtspMessage(KEY, 1, "client_to_host", new Uint8Array(0)), /cannot be sealed/);
  assertThrows(() => sealRtspMessage(KEY.subarray(0, 8), 1, "client_to_host", OPTIONS), /16 bytes/);
});

Deno.test("RtspHostCipher: requests must move forward; replies are numbered from 1", () => {
  const cipher = new RtspHostCipher(KEY);
  const first = sealRtspMessage(KEY, 1, "client_to_host", OPTIONS);
  assertEquals(hex(cipher.openRequest(first)), hex(OPTIONS));
  assertEquals(errorCode(() => cipher.openRequest(first)), "replayed");
  // A forged frame with a higher sequence number fails authentication and leaves the window where it was.
  const forged = sealRtspMessage(KEY, 9, "client_to_host", OPTIONS);
  forged[30] ^= 1;
  assertEquals(errorCode(() => cipher.openRequest(forged)), "authentication_failed");
  assertEquals(hex(cipher.openRequest(sealRtspMessage(KEY, 2, "client_to_host", OPTIONS))), hex(OPTIONS));
  assertEquals(
    errorCode(() => cipher.openRequest(sealRtspMessage(KEY, 2, "client_to_host", OPTIONS))),
    "replayed",
  );
  const reply1 = openRtspMessage(KEY, "host_to_client", cipher.sealReply(OPTIONS));
  const reply2 = openRtspMessage(KEY, "host_to_client", cipher.sealReply(OPTIONS));
  assertEquals([reply1.sequence, reply2.sequence], [1, 2]);
});

Deno.test("rtsp_encryption property: open(seal(x)) = x; any tampered, truncated, extended or replayed frame is refused", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc.integer({ min: 1, max: 0xffff_fffe }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.nat(),
      (key, plaintext, sequence, position, flip, cut) => {
        const frame = sealRtspMessage(key, sequence, "client_to_host", plaintext);
        assertEquals(frame.length, RTSP_ENCRYPTED_HEADER_BYTES + plaintext.length);
        const opened = openRtspMessage(key, "client_to_host", frame);
        assertEquals([opened.sequence, hex(opened.plaintext)], [sequence, hex(plaintext)]);

        const tampered = frame.slice();
        tampered[position % frame.length] ^= flip;
        assert(errorCode(() => openRtspMessage(key, "client_to_host", tampered)) !== "no error");

        const truncated = frame.subarray(0, cut % frame.length);
        assertEquals(errorCode(() => openRtspMessage(key, "client_to_host", truncated)), "truncated");
        const extended = new Uint8Array(frame.length + 1 + (cut % 8));
        extended.set(frame);
        assertEquals(errorCode(() => openRtspMessage(key, "client_to_host", extended)), "trailing_bytes");

        const cipher = new RtspHostCipher(key);
        assertEquals(hex(cipher.openRequest(frame)), hex(plaintext));
        assertEquals(errorCode(() => cipher.openRequest(frame)), "replayed");
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("rtsp_encryption fuzz: arbitrary bytes only ever raise RtspEncryptionError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, flagged) => {
      if (flagged && bytes.length > 0) bytes[0] |= 0x80;
      const cipher = new RtspHostCipher(KEY);
      assert(errorCode(() => cipher.openRequest(bytes)) !== "no error");
      errorCode(() => sealedFrameLength(bytes));
    }),
    { numRuns: 2000 },
  );
});
