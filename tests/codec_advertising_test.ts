/**
 * Issue 14: a fresh host advertises H.264 and only the codecs known to keep up; the background
 * speed measurement (after the API listens) then decides HEVC and AV1, and serverinfo follows it.
 * Which way the measurement goes depends on the machine, so the test checks that serverinfo agrees
 * with the host's own decision, not a particular outcome.
 */
import { assert, assertEquals } from "./assert.ts";
import { startGameStreamHost, waitUntil } from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlTag } from "./gamestream_client/client.ts";

// ServerCodecModeSupport bits: H.264 0x1, HEVC Main 0x100, AV1 Main 8-bit 0x10000.
const BITS = { h264: 0x1, hevc: 0x100, av1: 0x10000 } as const;

interface DecisionRecord {
  msg: string;
  codec: string;
  advertised: boolean;
  encoder: string | null;
  reason?: string;
}

/** The host's last JSON log record `msg` about `codec`, if logged yet. */
function loggedRecord(stderr: string, msg: string, codec: string): DecisionRecord | undefined {
  const records = stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l) as DecisionRecord
  );
  return records.filter((r) => r.msg === msg && r.codec === codec).at(-1);
}

Deno.test({
  name: "codec advertising: H.264 at once, HEVC/AV1 as their measured speed decides, serverinfo agrees",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { host, base } = await startGameStreamHost();
    const client = new GameStreamTestClient("127.0.0.1", base);
    try {
      const modes = async () => Number(xmlTag(await client.httpGet("/serverinfo"), "ServerCodecModeSupport"));
      const measured: Record<string, boolean> = {};
      for (const codec of ["hevc", "av1"] as const) {
        const initial = loggedRecord(host.stderr(), "codec advertising", codec);
        assert(initial !== undefined, `no start-up decision for ${codec}`);
        if (initial.encoder === null || initial.reason?.startsWith("hardware encoder")) continue;
        // A software encoder has no figure in a new state DB: not advertised until measured.
        assertEquals(initial.advertised, false, `${codec} advertised before it was measured`);
        assert((await modes() & BITS.h264) !== 0, "H.264 is always advertised");
        const line = await waitUntil(
          `the ${codec} speed measurement`,
          () => loggedRecord(host.stderr(), "encoder speed measured", codec),
          60_000,
        );
        measured[codec] = line!.advertised;
      }
      const support = await modes();
      for (const [codec, advertised] of Object.entries(measured)) {
        assertEquals(
          (support & BITS[codec as keyof typeof BITS]) !== 0,
          advertised,
          `serverinfo disagrees with the ${codec} decision`,
        );
      }
      assert((support & BITS.h264) !== 0);
    } finally {
      await client.close();
      await host.cleanup();
    }
  },
});
