// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { Buffer } from "node:buffer";
import { createCipheriv } from "node:crypto";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  CONTROL_REPLAY_WINDOW,
  CONTROL_TYPE,
  ControlCipher,
  ControlError,
  decodeClientMessage,
  decodeHostMessage,
  hdrModePayload,
  idrRequestPayload,
  invalidateRefsPayload,
  MAX_CONTROL_PAYLOAD_BYTES,
  motionEventStatePayload,
  periodicPingPayload,
  rumblePayload,
  rumbleTriggersPayload,
  startBPayload,
  terminationPayload,
} from "./control.ts";
import type { ControlErrorCode, HdrMetadata } from "./control.ts";
import { encodeInputEvent } from "./input.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function controlError(fn: () => unknown): ControlErrorCode {
  const error = assertThrows(fn);
  assert(error instanceof ControlError, `expected ControlError, got ${error}`);
  return error.code;
}

Deno.test("ControlCipher reproduces the §6.3 test vector (client seq 0, IDR request)", () => {
  const sealed = new ControlCipher(KEY, "client").seal(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  assertEquals(
    hex(sealed),
    "01 00 1a 00 00 00 00 00 22 30 27 23 53 78 11 16 6c b9 bf ea d7 da d4 57 5c d6 29 f5 ca fe",
  );
  const opened = new ControlCipher(KEY, "host").open(sealed);
  assertEquals([opened.type, hex(opened.payload)], [CONTROL_TYPE.IDR_REQUEST, "00 00"]);
});

Deno.test("ControlCipher: sequences count per direction from 0; the direction byte separates them", () => {
  const client = new ControlCipher(KEY, "client");
  const host = new ControlCipher(KEY, "host");
  for (let i = 0; i < 3; i++) {
    const sealed = client.seal(CONTROL_TYPE.PERIODIC_PING, periodicPingPayload());
    assertEquals(new DataView(sealed.buffer).getUint32(4, true), i);
    assertEquals(host.open(sealed), { type: CONTROL_TYPE.PERIODIC_PING, payload: periodicPingPayload() });
  }
  assertEquals(client.sendSequence, 3);
  const termination = host.seal(CONTROL_TYPE.TERMINATION, terminationPayload());
  assertEquals(new DataView(termination.buffer).getUint32(4, true), 0);
  assertEquals(hex(client.open(termination).payload), "80 03 00 23");
  // A message reflected back to its sender does not open: the nonce's direction byte differs.
  assertEquals(controlError(() => host.open(host.seal(CONTROL_TYPE.RUMBLE, new Uint8Array(10)))), "tag");
  // Empty payloads and the largest payload the LE16 length allows both round-trip.
  assertEquals(host.open(client.seal(0x1234, new Uint8Array())).payload.length, 0);
  const big = new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES).fill(7);
  const sealedBig = client.seal(0x1234, big);
  assertEquals(new DataView(sealedBig.buffer).getUint16(2, true) + 4, sealedBig.length);
  assertEquals(host.open(sealedBig).payload, big);
  assertEquals(
    controlError(() => client.seal(1, new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES + 1))),
    "too_large",
  );
  assertThrows(() => new ControlCipher(new Uint8Array(15), "host"), /16 bytes/);
});

Deno.test("ControlCipher.open refuses short, unencrypted, mis-sized, forged and nested messages", () => {
  const client = new ControlCipher(KEY, "client");
  const host = new ControlCipher(KEY, "host");
  const sealed = client.seal(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  assertEquals(controlError(() => host.open(sealed.subarray(0, 27))), "short");
  const plain = sealed.slice();
  plain[0] = 0x02;
  assertEquals(controlError(() => host.open(plain)), "not_encrypted");
  assertEquals(controlError(() => host.open(Uint8Array.of(...sealed, 0))), "length_mismatch");
  for (const at of [4, 8, 23, 24, sealed.length - 1]) { // seq (nonce), tag, ciphertext
    const forged = sealed.slice();
    forged[at] ^= 0x01;
    assertEquals(controlError(() => host.open(forged)), "tag", `byte ${at}`);
  }
  const other = new ControlCipher(Uint8Array.from(KEY, (b) => b ^ 0xff), "host");
  assertEquals(controlError(() => other.open(sealed)), "tag");
  // A host must not accept an envelope inside an envelope (Sunshine refuses it too).
  const inner = client.seal(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  const nested = client.seal(CONTROL_TYPE.ENCRYPTED, inner.subarray(4));
  assertEquals(controlError(() => host.open(nested)), "nested");
  // subarray views with a byteOffset open as well as fresh buffers.
  const startB = client.seal(CONTROL_TYPE.START_B, startBPayload());
  const framed = new Uint8Array(startB.length + 5);
  framed.set(startB, 5);
  assertEquals(host.open(framed.subarray(5)).type, CONTROL_TYPE.START_B);
});

Deno.test("ControlCipher.open refuses a replayed or too-old sequence; reordering inside the window is fine", () => {
  const client = new ControlCipher(KEY, "client");
  const host = new ControlCipher(KEY, "host");
  const sealed = Array.from({ length: 5 }, (_, i) => client.seal(CONTROL_TYPE.INPUT, Uint8Array.of(i)));
  // Arrival order 0, 3, 1, 4, 2: each opens once; any repeat is a replay.
  for (const i of [0, 3, 1, 4, 2]) assertEquals(host.open(sealed[i]).payload, Uint8Array.of(i));
  for (const i of [0, 1, 2, 3, 4]) assertEquals(controlError(() => host.open(sealed[i])), "replayed");
  // A forgery with an unseen sequence fails the tag and does not move the window.
  const forged = client.seal(CONTROL_TYPE.INPUT, Uint8Array.of(9));
  new DataView(forged.buffer).setUint32(4, 1_000_000, true);
  assertEquals(controlError(() => host.open(forged)), "tag");
  // Jump ahead by the window: everything at or below newest − window is refused, unseen newer ones open.
  const far = new ControlCipher(KEY, "client");
  const envelopes = new Map<number, Uint8Array>();
  for (let seq = 0; seq <= CONTROL_REPLAY_WINDOW + 10; seq++) {
    const envelope = far.seal(CONTROL_TYPE.INPUT, new Uint8Array(1));
    if (seq === 5 || seq === 11 || seq === CONTROL_REPLAY_WINDOW + 10) envelopes.set(seq, envelope);
  }
  const fresh = new ControlCipher(KEY, "host");
  fresh.open(envelopes.get(CONTROL_REPLAY_WINDOW + 10)!);
  assertEquals(controlError(() => fresh.open(envelopes.get(5)!)), "replayed", "older than the window");
  assertEquals(fresh.open(envelopes.get(11)!).payload.length, 1, "inside the window, unseen");
  assertEquals(controlError(() => fresh.open(envelopes.get(11)!)), "replayed");
});

Deno.test("ControlCipher property: any arrival order opens each sequence exactly once", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 63 }), { minLength: 1, maxLength: 200 }),
      (arrivals) => {
        const client = new ControlCipher(KEY, "client");
        const sealed = Array.from({ length: 64 }, () => client.seal(CONTROL_TYPE.INPUT, new Uint8Array(1)));
        const host = new ControlCipher(KEY, "host");
        const opened = new Set<number>();
        for (const i of arrivals) {
          try {
            host.open(sealed[i]);
            assert(!opened.has(i), `sequence ${i} opened twice`);
            opened.add(i);
          } catch (error) {
            assert(error instanceof ControlError && error.code === "replayed", String(error));
            assert(opened.has(i), `sequence ${i} refused before it was opened`);
          }
        }
        assertEquals(opened.size, new Set(arrivals).size);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("ControlCipher.open checks the decrypted V2 header (inner length, nested type)", () => {
  // Each envelope below reuses sequence 0, so each is opened by a fresh cipher (a repeat would be a replay).
  // Authentic envelopes around hand-made plaintexts, sealed the way a client would (seq 0, direction 'C').
  const sealRaw = (plain: Uint8Array): Uint8Array => {
    const iv = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x43, 0x43);
    const cipher = createCipheriv("aes-128-gcm", KEY, iv);
    const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
    const out = new Uint8Array(24 + ciphertext.length);
    new DataView(out.buffer).setUint16(0, 1, true);
    new DataView(out.buffer).setUint16(2, 20 + ciphertext.length, true);
    out.set(cipher.getAuthTag(), 8);
    out.set(ciphertext, 24);
    return out;
  };
  assertEquals(
    new ControlCipher(KEY, "host").open(sealRaw(Uint8Array.of(0x02, 0x03, 2, 0, 0, 0))).type,
    CONTROL_TYPE.IDR_REQUEST,
  );
  assertEquals(
    controlError(() => new ControlCipher(KEY, "host").open(sealRaw(Uint8Array.of(0x02, 0x03, 3, 0, 0, 0)))),
    "length_mismatch",
  );
  assertEquals(
    controlError(() => new ControlCipher(KEY, "host").open(sealRaw(Uint8Array.of(0x02, 0x03, 1, 0, 0, 0)))),
    "length_mismatch",
  );
  assertEquals(
    controlError(() => new ControlCipher(KEY, "host").open(sealRaw(Uint8Array.of(0x01, 0x00, 0, 0)))),
    "nested",
  );
});

Deno.test("decodeClientMessage: every §6.4 type, with short payloads malformed", () => {
  assertEquals(decodeClientMessage(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload()), { kind: "idr_request" });
  assertEquals(decodeClientMessage(CONTROL_TYPE.START_B, startBPayload()), { kind: "start_b" });
  assertEquals(decodeClientMessage(CONTROL_TYPE.PERIODIC_PING, periodicPingPayload()), { kind: "ping" });
  assertEquals(hex(periodicPingPayload()), "04 00 00 00 00 00 00 00");
  const rfi = invalidateRefsPayload(5, 0x1_0000_0009n);
  assertEquals(rfi.length, 24);
  assertEquals(decodeClientMessage(CONTROL_TYPE.INVALIDATE_REFERENCE_FRAMES, rfi), {
    kind: "invalidate_refs",
    first: 5n,
    last: 0x1_0000_0009n,
  });
  const key = encodeInputEvent({ kind: "key", down: true, keyCode: 0x41, modifiers: 1, flags: 0 });
  assertEquals(decodeClientMessage(CONTROL_TYPE.INPUT, key), {
    kind: "input",
    event: { kind: "key", down: true, keyCode: 0x41, modifiers: 1, flags: 0 },
  });
  assertEquals(decodeClientMessage(CONTROL_TYPE.LTR_ACK, Uint8Array.of(7, 1, 0, 0, 0, 0, 0, 0)), {
    kind: "ltr_ack",
    frame: 0x107,
  });
  const fec = Uint8Array.of(0, 0, 1, 0, 0, 9, 0, 8, 0, 1, 0, 20, 0, 4, 0, 19, 0, 3, 20, 1, 2);
  assertEquals(decodeClientMessage(CONTROL_TYPE.FEC_STATUS, fec), {
    kind: "fec_status",
    frameIndex: 256,
    highestReceivedSequence: 9,
    nextContiguousSequence: 8,
    missingBeforeHighest: 1,
    totalData: 20,
    totalParity: 4,
    receivedData: 19,
    receivedParity: 3,
    fecPercentage: 20,
    blockIndex: 1,
    blockCount: 2,
  });
  const loss = new Uint8Array(32);
  new DataView(loss.buffer).setBigUint64(12, 1234n, true);
  assertEquals(decodeClientMessage(CONTROL_TYPE.LOSS_STATS, loss), {
    kind: "loss_stats",
    lastGoodFrame: 1234n,
  });
  for (const [type, length] of [[0x0301, 15], [0x0350, 3], [0x5502, 20], [0x0201, 19], [0x0206, 3]]) {
    assertEquals(decodeClientMessage(type, new Uint8Array(length)).kind, "malformed", `type ${type}`);
  }
  assertEquals(decodeClientMessage(0x7777, new Uint8Array()), { kind: "unknown", type: 0x7777 });
  assertEquals(decodeClientMessage(CONTROL_TYPE.RUMBLE, new Uint8Array(10)).kind, "unknown"); // wrong direction
});

Deno.test("host → client builders: §6.4 byte layouts, and decodeHostMessage inverts them", () => {
  assertEquals(hex(terminationPayload()), "80 03 00 23");
  assertEquals(hex(terminationPayload(0x800e9302)), "80 0e 93 02");
  assertEquals(decodeHostMessage(CONTROL_TYPE.TERMINATION, terminationPayload()), {
    kind: "termination",
    reason: 0x80030023,
    extended: true,
  });
  assertEquals(decodeHostMessage(CONTROL_TYPE.TERMINATION, Uint8Array.of(0, 1)), {
    kind: "termination",
    reason: 0x0100,
    extended: false,
  });
  assertEquals(hex(rumblePayload(1, 0x1234, 0xffff)), "ee ff c0 00 01 00 34 12 ff ff");
  assertEquals(decodeHostMessage(CONTROL_TYPE.RUMBLE, rumblePayload(1, 0x1234, 0xffff)), {
    kind: "rumble",
    controller: 1,
    lowFrequency: 0x1234,
    highFrequency: 0xffff,
  });
  assertEquals(hex(rumbleTriggersPayload(2, 3, 0x100)), "02 00 03 00 00 01");
  assertEquals(decodeHostMessage(CONTROL_TYPE.RUMBLE_TRIGGERS, rumbleTriggersPayload(2, 3, 0x100)), {
    kind: "rumble_triggers",
    controller: 2,
    left: 3,
    right: 0x100,
  });
  assertEquals(hex(motionEventStatePayload(1, 200, 2)), "01 00 c8 00 02");
  assertEquals(decodeHostMessage(CONTROL_TYPE.MOTION_EVENT_STATE, motionEventStatePayload(1, 200, 2)), {
    kind: "motion_event_state",
    controller: 1,
    reportRateHz: 200,
    motionType: 2,
  });
  assertEquals(hex(hdrModePayload(false)), "00");
  assertEquals(decodeHostMessage(CONTROL_TYPE.HDR_MODE, hdrModePayload(true)), {
    kind: "hdr_mode",
    enabled: true,
    metadata: null,
  });
  const metadata: HdrMetadata = {
    displayPrimaries: [{ x: 35400, y: 14600 }, { x: 8500, y: 39850 }, { x: 6550, y: 2300 }],
    whitePoint: { x: 15635, y: 16450 },
    maxDisplayLuminance: 1000,
    minDisplayLuminance: 50,
    maxContentLightLevel: 1000,
    maxFrameAverageLightLevel: 400,
    maxFullFrameLuminance: 600,
  };
  const hdr = hdrModePayload(true, metadata);
  assertEquals(hdr.length, 27);
  assertEquals(hex(hdr.subarray(0, 5)), "01 48 8a 08 39");
  assertEquals(hex(hdr.subarray(25)), "58 02");
  assertEquals(decodeHostMessage(CONTROL_TYPE.HDR_MODE, hdr), { kind: "hdr_mode", enabled: true, metadata });
  assertEquals(decodeHostMessage(CONTROL_TYPE.RUMBLE, new Uint8Array(9)).kind, "malformed");
  assertEquals(decodeHostMessage(CONTROL_TYPE.HDR_MODE, new Uint8Array()).kind, "malformed");
  assertEquals(decodeHostMessage(CONTROL_TYPE.TERMINATION, new Uint8Array(1)).kind, "malformed");
  assertEquals(decodeHostMessage(0x0302, new Uint8Array(2)), { kind: "unknown", type: 0x0302 });
});

Deno.test("control fuzz: random envelopes open or throw ControlError; message decoders never throw", () => {
  const host = new ControlCipher(KEY, "host");
  const client = new ControlCipher(KEY, "client");
  const types = Object.values(CONTROL_TYPE);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 96 }),
      fc.oneof(fc.constantFrom(...types), fc.integer({ min: 0, max: 0xffff })),
      fc.boolean(),
      (bytes, type, fixHeader) => {
        const packet = bytes.slice();
        // Steer half the runs past the header checks so authentication is what refuses them.
        if (fixHeader && packet.length >= 4) {
          new DataView(packet.buffer).setUint16(0, CONTROL_TYPE.ENCRYPTED, true);
          new DataView(packet.buffer).setUint16(2, packet.length - 4, true);
        }
        for (const cipher of [host, client]) {
          try {
            cipher.open(packet);
          } catch (error) {
            if (!(error instanceof ControlError)) throw error;
          }
        }
        assert(typeof decodeClientMessage(type, bytes).kind === "string");
        assert(typeof decodeHostMessage(type, bytes).kind === "string");
      },
    ),
    { numRuns: 5000 },
  );
});

Deno.test("control property: open(seal(type, payload)) returns them, in both directions", () => {
  const client = new ControlCipher(KEY, "client");
  const host = new ControlCipher(KEY, "host");
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff }).filter((t) => t !== CONTROL_TYPE.ENCRYPTED),
      fc.uint8Array({ maxLength: 200 }),
      (type, payload) => {
        assertEquals(host.open(client.seal(type, payload)), { type, payload });
        assertEquals(client.open(host.seal(type, payload)), { type, payload });
      },
    ),
    { numRuns: 1000 },
  );
});
