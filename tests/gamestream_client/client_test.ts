/**
 * The test client's reading of DESCRIBE's Opus layouts, as Moonlight reads them (§8.5).
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { openRtspReply, opusLayoutFromDescribe, sealRtspRequest } from "./client.ts";

const SUNSHINE_DESCRIBE = [
  "a=fmtp:97 surround-params=21101",
  "a=fmtp:97 surround-params=642012453",
  "a=fmtp:97 surround-params=660012345",
  "a=fmtp:97 surround-params=85301245367",
  "a=fmtp:97 surround-params=88001234567",
].join("\n");

Deno.test("Opus layout from DESCRIBE: the first normal-quality string, reordered as Moonlight does", () => {
  assertEquals(opusLayoutFromDescribe("", 2), {
    channels: 2,
    streams: 1,
    coupled_streams: 1,
    mapping: [0, 1],
  });
  // 5.1 "2453" → LFE (last digit) moves to index 3: Sunshine's advertising ends at the identity.
  assertEquals(opusLayoutFromDescribe(SUNSHINE_DESCRIBE, 6), {
    channels: 6,
    streams: 4,
    coupled_streams: 2,
    mapping: [0, 1, 2, 3, 4, 5],
  });
  assertEquals(opusLayoutFromDescribe(SUNSHINE_DESCRIBE, 8).mapping, [0, 1, 2, 7, 4, 5, 3, 6]);
  assertThrows(() => opusLayoutFromDescribe("a=fmtp:97 surround-params=21101", 6), /no 6-channel layout/);
  assertThrows(() => opusLayoutFromDescribe("surround-params=6420", 6), /no 6-channel layout/);
});

Deno.test("Opus layout fuzz: any DESCRIBE body gives a layout of the asked size or a clear error", () => {
  fc.assert(
    fc.property(fc.string(), fc.constantFrom(2 as const, 6 as const, 8 as const), (body, channels) => {
      try {
        const layout = opusLayoutFromDescribe(body, channels);
        assertEquals(layout.channels, channels);
        assertEquals(layout.mapping.length, channels);
      } catch (error) {
        assert(/no \d-channel layout/.test(String(error)), String(error));
      }
    }),
    { numRuns: 500 },
  );
});

// The same fixed vectors as gamestream/rtsp_encryption_test.ts, computed with Python's `cryptography` AESGCM
// (key 00..0f, sequence 1) from the §5.3 layout: the test client's own sealing is checked against them.
const RTSP_KEY = Uint8Array.from({ length: 16 }, (_, i) => i);
const RTSP_OPTIONS = new TextEncoder().encode(
  "OPTIONS rtspenc://127.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 127.0.0.1\r\n\r\n",
);
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) => Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
const CLIENT_SEQ1 = "800000600000000143f074f76d6addbc55750770689fc38f9fe452003a42126629e9a38df3e5ba69a1" +
  "abdaee48b4087f9b128c3b95878598383099a96655636896ac6da0efbb436ac2aeceac562622b5dcf8adf56d99249413ba738cea13" +
  "18f3266c1cfa765403bcd44d456c549b9a459a4a9180ecf2b073";
const HOST_SEQ1 = "8000006000000001e6ca73c3a2e196c57a497a04d5b123477d0c75ad5a58627b1d80c68e9abb548f663d652b" +
  "4ad1315a53393ad9686d7d8ce184a2a59af37b3f57967b0a0eafd73d112bf2c21c5c4e6cf197ac76d6668f87f3df595a957eb5a356ff" +
  "fded79c4532fd16aa7cc3f81d98e78e0c4a9d20e3e5e";

Deno.test("test client encrypted RTSP: seals and opens the fixed vectors as Moonlight does", async () => {
  assertEquals(hex(await sealRtspRequest(RTSP_KEY, 1, RTSP_OPTIONS)), CLIENT_SEQ1);
  assertEquals(hex(await openRtspReply(RTSP_KEY, fromHex(HOST_SEQ1))), hex(RTSP_OPTIONS));
  // Moonlight refuses a client-direction frame, a plain reply, trailing bytes and a flipped bit.
  let refused = 0;
  const tampered = fromHex(HOST_SEQ1);
  tampered[40] ^= 4;
  for (const bad of [fromHex(CLIENT_SEQ1), RTSP_OPTIONS, fromHex(HOST_SEQ1 + "00"), tampered]) {
    try {
      await openRtspReply(RTSP_KEY, bad);
    } catch {
      refused++;
    }
  }
  assertEquals(refused, 4);
});
