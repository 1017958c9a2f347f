/**
 * Moonlight's "Resume": a client that vanishes without /cancel (here: an ENet disconnect, as when the stream
 * window is closed or the app killed) leaves its session kept for the grace period — media stopped, serverinfo
 * BUSY with the app — and only the same paired client may /resume it; /cancel and the management API end it.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  startGameStreamHost,
  submitPinWhenAsked,
  waitUntil as waitUntilOr,
} from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlStatus, xmlTag } from "./gamestream_client/client.ts";
import type { MediaSessionHandle } from "../host/native_abi.ts";

const MODE = { width: 640, height: 360, fps: 30, bitrateKbps: 4_000, packetSize: 1024 };

let describeState = () => "";
const waitUntil = <T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000) =>
  waitUntilOr(what, probe, timeoutMs, () => describeState());
const framesDecoded = (handle: MediaSessionHandle | null) => Number(handle?.stats().frames_decoded ?? 0);

Deno.test({
  name: "GameStream resume: an unclean disconnect keeps the session BUSY; only its client resumes it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { host, base, api } = await startGameStreamHost(["--gamestream-resume-grace", "120"]);
    const owner = new GameStreamTestClient("127.0.0.1", base);
    const other = new GameStreamTestClient("127.0.0.1", base);
    describeState = () =>
      [
        `video: ${JSON.stringify(owner.video?.stats() ?? null)}`,
        ...host.stderr().trimEnd().split("\n").slice(-30),
      ]
        .join("\n");
    const serverState = async (client: GameStreamTestClient) => {
      const info = await client.httpsGet("/serverinfo");
      return { game: Number(xmlTag(info, "currentgame")), state: xmlTag(info, "state") };
    };
    const streaming = async () => (await (await fetch(`${api}/status`)).json()).video_streaming as boolean;
    const streamFrom = async (verb: "launch" | "resume") => {
      const launch = await owner.launch({ ...MODE, verb });
      assertEquals(xmlTag(launch.xml, verb === "launch" ? "gamesession" : "resume"), "1", launch.xml);
      const stream = await owner.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, MODE);
      await owner.startStreams(stream, { packetSize: MODE.packetSize });
      await waitUntil(`30 decoded frames after ${verb}`, () => framesDecoded(owner.video) >= 30);
    };
    /** Closing the client sends an ENet disconnect and nothing else: no /cancel. */
    const leaveUncleanly = async () => {
      await owner.close();
      await waitUntil("the host to stop streaming", async () => !(await streaming()));
    };
    try {
      assertEquals(await owner.pair("1111", submitPinWhenAsked(api, "1111")), "paired");
      assertEquals(await other.pair("2222", submitPinWhenAsked(api, "2222")), "paired");

      await t.step("after an unclean disconnect serverinfo stays BUSY with the app", async () => {
        await streamFrom("launch");
        await leaveUncleanly();
        assertEquals(await serverState(owner), { game: 1, state: "SUNSHINE_SERVER_BUSY" });
        assertEquals(await serverState(other), { game: 1, state: "SUNSHINE_SERVER_BUSY" });
        assert(host.stderr().includes("session kept for resume"), "the host logs that it keeps the session");
      });

      await t.step("another paired client can neither resume nor launch over it", async () => {
        const resume = await other.launch({ ...MODE, verb: "resume" });
        assertEquals(xmlStatus(resume.xml), 403, resume.xml);
        assert(resume.xml.includes("another client"), resume.xml);
        assert(!resume.xml.includes("sessionUrl0"), resume.xml);
        const launch = await other.launch(MODE);
        assertEquals(xmlStatus(launch.xml), 400, launch.xml);
        assertEquals(await serverState(owner), { game: 1, state: "SUNSHINE_SERVER_BUSY" });
      });

      await t.step("the same client resumes and decodes frames again", async () => {
        await streamFrom("resume");
        assertEquals(await streaming(), true);
      });

      await t.step("the management API ends a kept session", async () => {
        await leaveUncleanly();
        assertEquals((await serverState(owner)).state, "SUNSHINE_SERVER_BUSY");
        const stop = await fetch(`${api}/session`, { method: "DELETE" });
        assert(stop.status < 300, `DELETE /session answered ${stop.status}`);
        await stop.body?.cancel();
        await waitUntil("serverinfo FREE", async () => (await serverState(owner)).game === 0);
        assertEquals(await serverState(owner), { game: 0, state: "SUNSHINE_SERVER_FREE" });
        const resume = await owner.launch({ ...MODE, verb: "resume" });
        assertEquals(xmlStatus(resume.xml), 503, resume.xml);
      });

      await t.step("/cancel ends a kept session", async () => {
        await streamFrom("launch");
        await leaveUncleanly();
        assertEquals((await serverState(owner)).state, "SUNSHINE_SERVER_BUSY");
        assertEquals(xmlTag(await owner.httpsGet("/cancel"), "cancel"), "1");
        assertEquals(await serverState(owner), { game: 0, state: "SUNSHINE_SERVER_FREE" });
      });
    } finally {
      await owner.close();
      await other.close();
      await host.cleanup();
    }
  },
});

Deno.test({
  name:
    "GameStream resume: a control timeout keeps the session too; it ends by itself when the grace is over",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { host, base, api } = await startGameStreamHost(["--gamestream-resume-grace", "2"]);
    const client = new GameStreamTestClient("127.0.0.1", base);
    describeState = () => host.stderr().trimEnd().split("\n").slice(-30).join("\n");
    try {
      assertEquals(await client.pair("3333", submitPinWhenAsked(api, "3333")), "paired");
      const launch = await client.launch(MODE);
      const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, MODE);
      await client.startStreams(stream, { packetSize: MODE.packetSize });
      await waitUntil("decoded frames", () => framesDecoded(client.video) >= 10);
      // This time the client goes silent instead of disconnecting. A timeout notices: ENet's own (the host's
      // unacknowledged ping; at a loopback round trip ENet's 32 / 5 s / 30 s rule ends the peer after about 5 s)
      // or, if that were slower, the control stream's 10 s idle timeout.
      await client.vanish();
      await waitUntil(
        "the control timeout to keep the session",
        () =>
          /session kept for resume","cause":"timeout"/.test(host.stderr()) ||
          (host.stderr().includes("control stream idle") &&
            host.stderr().includes("session kept for resume")),
        30_000,
      );
      // The log line proves the session was kept and then ended by the timer, not by the disconnect itself.
      await waitUntil(
        "the grace period to end the session",
        () => host.stderr().includes("resume grace period over"),
      );
      const info = await client.httpsGet("/serverinfo");
      assertEquals([xmlTag(info, "currentgame"), xmlTag(info, "state")], ["0", "SUNSHINE_SERVER_FREE"]);
    } finally {
      await client.close();
      await host.cleanup();
    }
  },
});
