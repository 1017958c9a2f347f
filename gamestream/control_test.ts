import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  CONTROL_TYPE,
  ControlCipher,
  ControlError,
  decodeClientMessage,
  idrRequestPayload,
  invalidateRefsPayload,
  terminationPayload,
} from "./control.ts";
import { encodeInputEvent } from "./input.ts";

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

Deno.test("ControlCipher reproduces the §6.3 test vector (client seq 0, IDR request)", () => {
  const sealed = new ControlCipher(KEY, "client").seal(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  assertEquals(
    hex(sealed),
    "01 00 1a 00 00 00 00 00 22 30 27 23 53 78 11 16 6c b9 bf ea d7 da d4 57 5c d6 29 f5 ca fe",
  );
});

Deno.test("ControlCipher: each direction opens the other's messages in sequence; tampering is refused", () => {
  const client = new ControlCipher(KEY, "client");
  const host = new ControlCipher(KEY, "host");
  for (let i = 0; i < 3; i++) {
    const opened = host.open(client.seal(CONTROL_TYPE.PERIODIC_PING, Uint8Array.of(i)));
    assertEquals(opened.type, CONTROL_TYPE.PERIODIC_PING);
    assertEquals([...opened.payload], [i]);
  }
  const termination = client.open(host.seal(CONTROL_TYPE.TERMINATION, terminationPayload()));
  assertEquals(hex(termination.payload), "80 03 00 23");
  const forged = client.seal(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload());
  forged[forged.length - 1] ^= 1;
  assertThrows(() => host.open(forged), /authentication/);
  // Our own direction's nonce does not open: a reflected message is not accepted.
  assertThrows(() => host.open(host.seal(1, new Uint8Array())), /authentication/);
});

Deno.test("decodeClientMessage: types of §6.4 and input; short payloads are malformed", () => {
  assertEquals(decodeClientMessage(CONTROL_TYPE.IDR_REQUEST, idrRequestPayload()).kind, "idr_request");
  const rfi = decodeClientMessage(CONTROL_TYPE.INVALIDATE_REFERENCE_FRAMES, invalidateRefsPayload(5n, 9n));
  assertEquals(rfi, { kind: "invalidate_refs", first: 5n, last: 9n });
  const key = encodeInputEvent({ kind: "key", down: true, keyCode: 0x41, modifiers: 1, flags: 0 });
  const input = decodeClientMessage(CONTROL_TYPE.INPUT, key);
  assert(input.kind === "input" && input.event.kind === "key" && input.event.keyCode === 0x41);
  assertEquals(decodeClientMessage(CONTROL_TYPE.LTR_ACK, new Uint8Array(2)).kind, "malformed");
  assertEquals(decodeClientMessage(CONTROL_TYPE.INPUT, new Uint8Array(3)).kind, "malformed");
  assertEquals(decodeClientMessage(0x7777, new Uint8Array()).kind, "unknown");
});

Deno.test("fuzz: random envelopes only ever open or throw ControlError; random messages never throw", () => {
  const host = new ControlCipher(KEY, "host");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 0, max: 0xffff }), (bytes, type) => {
      try {
        host.open(bytes);
      } catch (error) {
        if (!(error instanceof ControlError)) throw error;
      }
      decodeClientMessage(type, bytes);
    }),
    { numRuns: 3000 },
  );
});
