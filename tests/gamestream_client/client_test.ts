/** The test client's reading of DESCRIBE's Opus layouts, as Moonlight reads them (§8.5). */
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { opusLayoutFromDescribe } from "./client.ts";

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
