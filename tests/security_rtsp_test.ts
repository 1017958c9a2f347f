/**
 * Issue 15, finding 4 (RTSP half) and the ANNOUNCE limits of finding 7, against a spawned `serve --gamestream`:
 * a real client launches from 127.0.0.1 while a stranger on "another machine" (127.0.0.2) speaks RTSP to the same
 * port. The stranger must get no session secret (X-SS-Ping-Payload, X-SS-Connect-Data), must not be able to
 * announce first, play or tear down, and the real client keeps decoding throughout; over rtspenc:// a party
 * without the launch's key gets nothing, even from the owner's address.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  startGameStreamHost,
  submitPinWhenAsked,
  waitUntil as waitUntilOr,
} from "./gamestream_client/host_harness.ts";
import {
  announceSdp,
  GameStreamTestClient,
  sealRtspRequest,
  tcpExchange,
  xmlTag,
} from "./gamestream_client/client.ts";
import type { MediaSessionHandle } from "../host/native_abi.ts";

const MODE = { width: 640, height: 360, fps: 30, bitrateKbps: 4_000, packetSize: 1024 };
const STRANGER = "127.0.0.2";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let describeState = () => "";
const waitUntil = <T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000) =>
  waitUntilOr(what, probe, timeoutMs, () => describeState());
const framesDecoded = (handle: MediaSessionHandle | null) => Number(handle?.stats().frames_decoded ?? 0);

/** An MLC-shaped request (§5.2). */
function rtspRequest(
  method: string,
  target: string,
  cseq: number,
  headers: string[] = [],
  body = "",
): string {
  return `${method} ${target} RTSP/1.0\r\nCSeq: ${cseq}\r\nX-GS-ClientVersion: 14\r\nHost: 127.0.0.1\r\n` +
    headers.map((h) => `${h}\r\n`).join("") +
    (body ? `Content-type: application/sdp\r\nContent-length: ${body.length}\r\n` : "") + `\r\n${body}`;
}

/** A small but complete ANNOUNCE body (encryption off, as an attacker would ask for). */
function announceBody(width: number, height: number, encryptionEnabled = 0): string {
  const video = { width, height, fps: 30, bitrateKbps: 4000, packetSize: 1024, audioChannels: 2 as const };
  return announceSdp("127.0.0.2", video, encryptionEnabled);
}

/** What `from` gets back for raw bytes: the reply as text, or "" when the host closed or reset the connection. */
async function exchange(port: number, bytes: Uint8Array, from = STRANGER): Promise<string> {
  try {
    return decoder.decode(await tcpExchange("127.0.0.1", port, bytes, from));
  } catch {
    return "";
  }
}

function assertNoSecret(reply: string, what: string): void {
  assert(!reply.includes("X-SS-"), `${what} leaked a session secret:\n${reply}`);
  assert(!/^RTSP\/1\.0 200/.test(reply), `${what} was served:\n${reply}`);
}

Deno.test({
  name:
    "RTSP security: a stranger gets no secrets and cannot announce, play or tear down; rtspenc needs the key",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { host, base, api } = await startGameStreamHost();
    const client = new GameStreamTestClient("127.0.0.1", base);
    describeState = () =>
      [
        `video: ${JSON.stringify(client.video?.stats() ?? null)}`,
        ...host.stderr().trimEnd().split("\n").slice(-30),
      ]
        .join("\n");
    try {
      assertEquals(await client.pair("4711", submitPinWhenAsked(api, "4711")), "paired");

      await t.step(
        "plain RTSP (corever=0): the stranger is refused every method, the owner streams",
        async () => {
          const launch = await client.launch({ ...MODE, corever: 0 });
          const url = xmlTag(launch.xml, "sessionUrl0")!;
          assert(url.startsWith("rtsp://"), launch.xml);
          const port = Number(url.slice(url.lastIndexOf(":") + 1));
          const strangerSays = (
            method: string,
            target: string,
            cseq: number,
            headers: string[] = [],
            body = "",
          ) => exchange(port, encoder.encode(rtspRequest(method, target, cseq, headers, body)));

          assertNoSecret(await strangerSays("OPTIONS", url, 1), "OPTIONS");
          assertNoSecret(await strangerSays("DESCRIBE", url, 2, ["Accept: application/sdp"]), "DESCRIBE");
          for (const [index, stream] of ["audio/0/0", "video/0/0", "control/13/0"].entries()) {
            const reply = await strangerSays("SETUP", `streamid=${stream}`, 3 + index, [
              "Transport: unicast;X-GS-ClientPort=50000-50001",
            ]);
            assertNoSecret(reply, `SETUP ${stream}`);
            assert(reply.startsWith("RTSP/1.0 403"), reply);
          }
          // Announcing first (encryption off) would have fixed the stream's parameters before the owner's ANNOUNCE.
          const session = "Session: DEADBEEFCAFE";
          assertNoSecret(
            await strangerSays("ANNOUNCE", "streamid=control/13/0", 6, [session], announceBody(640, 360)),
            "ANNOUNCE",
          );
          assertNoSecret(await strangerSays("PLAY", "/", 7, [session]), "PLAY");

          const stream = await client.handshake(url, launch, MODE); // throws unless every step answers 200
          await client.startStreams(stream, { packetSize: MODE.packetSize });
          await waitUntil("30 decoded frames", () => framesDecoded(client.video) >= 30);

          const teardown = await strangerSays("TEARDOWN", "/", 8, [session]);
          assertNoSecret(teardown, "TEARDOWN");
          assertNoSecret(await strangerSays("PLAY", "/", 9, [session]), "PLAY while streaming");
          const afterTeardown = framesDecoded(client.video);
          await waitUntil(
            "30 more frames after the stranger's TEARDOWN",
            () => framesDecoded(client.video) >= afterTeardown + 30,
          );
          assertEquals((await (await fetch(`${api}/status`)).json()).video_streaming, true);
          assert(
            host.stderr().split("\n").some((line) =>
              line.includes("rtsp request refused") && line.includes('"reason":"stranger"') &&
              line.includes(STRANGER)
            ),
            "the refusals are logged with their reason and source",
          );
          assertEquals(xmlTag(await client.httpsGet("/cancel"), "cancel"), "1");
          await client.close();
        },
      );

      await t.step(
        "rtspenc (corever=1): without the key nobody gets anything, not even from the owner's address",
        async () => {
          const launch = await client.launch(MODE);
          const url = xmlTag(launch.xml, "sessionUrl0")!;
          assert(url.startsWith("rtspenc://"), launch.xml);
          const port = Number(url.slice(url.lastIndexOf(":") + 1));
          const setup = rtspRequest("SETUP", "streamid=audio/0/0", 1, [
            "Transport: unicast;X-GS-ClientPort=1-2",
          ]);
          const wrongKey = crypto.getRandomValues(new Uint8Array(16));
          for (const from of [STRANGER, "127.0.0.1"]) {
            assertNoSecret(await exchange(port, encoder.encode(setup), from), `plain SETUP from ${from}`);
            const forged = await sealRtspRequest(wrongKey, 1, encoder.encode(setup));
            const reply = await exchange(port, forged, from);
            assertNoSecret(reply, `SETUP sealed with a wrong key from ${from}`);
            // The reply is a bare status in clear text, never a sealed frame the sender could study.
            assert(reply === "" || reply.startsWith("RTSP/1.0 4"), reply);
          }
          // A sealed request from the real client recorded on the wire and replayed by the stranger is refused.
          const recorded = await sealRtspRequest(
            launch.rikey,
            1,
            encoder.encode(rtspRequest("OPTIONS", url, 1)),
          );
          assertNoSecret(await exchange(port, recorded), "replayed sealed OPTIONS from the stranger");

          const stream = await client.handshake(url, launch, MODE);
          await client.startStreams(stream, { packetSize: MODE.packetSize });
          await waitUntil("30 decoded frames over rtspenc", () => framesDecoded(client.video) >= 30);
          // The owner's own recorded SETUP, replayed from its address, is refused too (its sequence number is used).
          const replayed = await sealRtspRequest(launch.rikey, 3, encoder.encode(setup));
          assertNoSecret(
            await exchange(port, replayed, "127.0.0.1"),
            "replayed sealed SETUP from the owner's address",
          );
          const before = framesDecoded(client.video);
          await waitUntil("frames keep coming", () => framesDecoded(client.video) >= before + 15);
          assertEquals(xmlTag(await client.httpsGet("/cancel"), "cancel"), "1");
          await client.close();
        },
      );

      await t.step("an ANNOUNCE of 16384x16384 is refused with a clear RTSP status", async () => {
        const launch = await client.launch(MODE);
        const url = xmlTag(launch.xml, "sessionUrl0")!;
        let error = "";
        try {
          await client.handshake(url, launch, { ...MODE, width: 16384, height: 16384 });
        } catch (e) {
          error = (e as Error).message;
        }
        assertEquals(error, "RTSP ANNOUNCE answered 400");
        assert(
          host.stderr().split("\n").some((line) =>
            line.includes("rtsp request refused") && line.includes('"reason":"stream_limits"')
          ),
          "the refusal names its reason",
        );
        // No stream started: nothing was encoded at that size.
        assertEquals((await (await fetch(`${api}/status`)).json()).video_streaming, false);
        assertEquals(xmlTag(await client.httpsGet("/cancel"), "cancel"), "1");
      });
    } finally {
      await client.close();
      await host.cleanup();
    }
  },
});
