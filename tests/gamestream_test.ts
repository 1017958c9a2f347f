/**
 * Issue 4 acceptance: `serve --gamestream` against our Moonlight-like test client, over real sockets —
 * pairing with the PIN from the management API, refusal of unpaired certificates, applist, launch at
 * 1280×720@60 H.264, RTSP, encrypted control stream, decoded video and audio, input reaching the recording
 * backend, IDR on request, 5 % video loss, and unpairing ending the stream.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  startGameStreamHost,
  submitPinWhenAsked as submitPinThroughApi,
  waitUntil as waitUntilOr,
} from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlStatus, xmlTag } from "./gamestream_client/client.ts";
import type { MediaSessionHandle } from "../host/native_abi.ts";
import { udpPortIsFree } from "./host_process.ts";
import { gameStreamPorts } from "../gamestream/rtsp.ts";

const MODE = { width: 1280, height: 720, fps: 60, bitrateKbps: 20_000, packetSize: 1024 };

/** Filled once the host runs: what a timeout should report (client stats, the host's last log lines). */
let describeState = () => "";
const waitUntil = <T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000) =>
  waitUntilOr(what, probe, timeoutMs, () => describeState());

const stat = (handle: MediaSessionHandle | null, name: string) => Number(handle?.stats()[name] ?? 0);

Deno.test({
  name: "GameStream host: pair, refuse strangers, launch, stream, input, IDR, loss, unpair",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    // Slow codecs allowed: every codec whose encoder opens is advertised, so each one is streamed below.
    const { host, base, api } = await startGameStreamHost(["--gamestream-allow-slow-codecs"]);
    const submitPinWhenAsked = (pin: string) => submitPinThroughApi(api, pin);
    const clients: GameStreamTestClient[] = [];
    try {
      const client = new GameStreamTestClient("127.0.0.1", base);
      const stranger = new GameStreamTestClient("127.0.0.1", base);
      clients.push(client, stranger);
      describeState = () =>
        [
          `video: ${JSON.stringify(client.video?.stats() ?? null)}`,
          `audio: ${JSON.stringify(client.audio?.stats() ?? null)}`,
          `host log (last 40 lines):`,
          ...host.stderr().trimEnd().split("\n").slice(-40),
        ].join("\n");

      await t.step("serverinfo over HTTP advertises Sunshine's version and H.264", async () => {
        const info = await client.httpGet("/serverinfo");
        assertEquals(xmlTag(info, "appversion"), "7.1.431.-1");
        assertEquals(Number(xmlTag(info, "HttpsPort")), base - 5);
        assert((Number(xmlTag(info, "ServerCodecModeSupport")) & 1) === 1);
        assertEquals(xmlTag(info, "PairStatus"), "0");
      });

      await t.step("a never-paired certificate gets no applist and cannot launch", async () => {
        assertEquals(xmlStatus(await stranger.httpsGet("/applist")), 401);
        const launch = await stranger.launch({ width: 1280, height: 720, fps: 60 });
        assertEquals(xmlStatus(launch.xml), 401);
        assert(!launch.xml.includes("sessionUrl0"));
      });

      await t.step("a wrong PIN fails and pins nothing", async () => {
        assertEquals(await stranger.pair("1234", submitPinWhenAsked("4321")), "wrong_pin");
        assertEquals((await (await fetch(`${api}/clients`)).json()).length, 0);
        assertEquals(xmlStatus(await stranger.httpsGet("/applist")), 401);
      });

      await t.step("pairing with the PIN submitted through the API succeeds", async () => {
        assertEquals(await client.pair("5338", submitPinWhenAsked("5338")), "paired");
        const paired = await (await fetch(`${api}/clients`)).json();
        assertEquals(paired.length, 1);
        const info = await client.httpsGet("/serverinfo");
        assertEquals(xmlTag(info, "PairStatus"), "1");
      });

      await t.step("applist has Desktop", async () => {
        const apps = await client.httpsGet("/applist");
        assert(apps.includes("<AppTitle>Desktop</AppTitle>"), apps);
      });

      await t.step(
        "launch 1280x720@60 H.264: ≥120 decodable frames, audio, input, IDR on request",
        async () => {
          const launch = await client.launch(MODE);
          const url = xmlTag(launch.xml, "sessionUrl0");
          // The client sends corever=1, as current Moonlight does: RTSP is sealed with the launch's key.
          assert(url?.startsWith("rtspenc://"), launch.xml);
          const stream = await client.handshake(url!, launch, MODE);
          await client.startStreams(stream, { packetSize: MODE.packetSize });
          await waitUntil("120 decoded frames", () => stat(client.video, "frames_decoded") >= 120, 30_000);
          assertEquals(client.video!.stats().width, 1280);
          assertEquals(client.video!.stats().height, 720);
          await waitUntil("decoded audio", () => stat(client.audio, "packets_decoded") >= 100);
          assert(stat(client.audio, "last_rms_channel0") > 2000, JSON.stringify(client.audio!.stats()));
          assertEquals(stat(client.audio, "decryption_failures"), 0);

          const status = await (await fetch(`${api}/status`)).json();
          assertEquals(status.video_streaming, true);
          assertEquals(status.stream.width, 1280);
          assertEquals(status.stream.codec, "h264");
          assertEquals(status.session.fps, 60);

          // After Start B the host states the dynamic range: SDR.
          const hdr = await waitUntil(
            "the HDR mode message",
            () => client.control!.received.find((m) => m.type === 0x010e),
          );
          assertEquals(hdr!.payload[0], 0);

          client.control!.sendInput({ kind: "key", down: true, keyCode: 0x41, modifiers: 0, flags: 0 });
          await waitUntil(
            "key press in the recording backend",
            () =>
              host.stderr().split("\n").some((line) =>
                line.includes("input event recorded") && line.includes('"kind":"key"') &&
                !line.includes("keyCode")
              ),
          );

          const idrBefore = stat(client.video, "idr_frames");
          const idr = await fetch(`${api}/session/idr`, { method: "POST" });
          assertEquals(idr.status, 202);
          await idr.body?.cancel();
          await waitUntil("an IDR after the API request", () => stat(client.video, "idr_frames") > idrBefore);

          const cancel = await client.httpsGet("/cancel");
          assertEquals(xmlTag(cancel, "cancel"), "1");
          await waitUntil(
            "termination on the control stream",
            () => client.control!.received.some((m) => m.type === 0x0109),
          );
          await client.close();
          const after = await (await fetch(`${api}/status`)).json();
          assertEquals(after.video_streaming, false);
          const noStream = await fetch(`${api}/session/idr`, { method: "POST" });
          assertEquals(noStream.status, 409);
          await noStream.body?.cancel();
        },
      );

      await t.step(
        "5.1 (plain RTSP, corever=0) and 7.1 surround: every channel decodes in its own place",
        async () => {
          for (const audioChannels of [6, 8] as const) {
            // An older client (corever 0) is answered rtsp:// and handshakes in clear text.
            const corever = audioChannels === 6 ? 0 : 1;
            const mode = { ...MODE, width: 640, height: 360, fps: 30, audioChannels, corever };
            const launch = await client.launch(mode);
            const scheme = xmlTag(launch.xml, "sessionUrl0")!.split("://")[0];
            assertEquals(scheme, corever === 0 ? "rtsp" : "rtspenc");
            const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, mode);
            await client.startStreams(stream, { packetSize: MODE.packetSize });
            // 1.2 s of 5 ms packets: two half-second pitch windows.
            await waitUntil(
              `${audioChannels}-channel audio`,
              () => stat(client.audio, "packets_decoded") >= 240,
            );
            const stats = client.audio!.stats();
            assertEquals(stats.channels, audioChannels);
            // The host's test tone gives channel c the pitch 440 Hz × (c + 2) / 2.
            for (let c = 0; c < audioChannels; c++) {
              const expected = 440 * (c + 2) / 2;
              const measured = Number(stats[`hz_channel${c}`]);
              assert(
                Math.abs(measured / expected - 1) < 0.05,
                `channel ${c}: ${measured} Hz, ${JSON.stringify(stats)}`,
              );
            }
            assertEquals(xmlTag(await client.httpsGet("/cancel"), "cancel"), "1");
            await client.close();
          }
        },
      );

      // ServerCodecModeSupport bits (§2.2): HEVC Main 0x100, AV1 Main 8-bit 0x10000.
      const codecModes = Number(xmlTag(await client.httpsGet("/serverinfo"), "ServerCodecModeSupport"));
      for (const [codec, bit, statusName] of [["hevc", 0x100, "h265"], ["av1", 0x10000, "av1"]] as const) {
        const supported = (codecModes & bit) !== 0;
        await t.step({
          name: `launch 1280x720@60 ${codec}: ≥120 decodable frames${
            supported ? "" : ` (skipped: no ${codec} encoder)`
          }`,
          ignore: !supported,
          fn: async () => {
            const mode = { ...MODE, codec };
            const launch = await client.launch(mode);
            const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, mode);
            await client.startStreams(stream, { packetSize: MODE.packetSize, codec });
            // Software HEVC/AV1 encode 720p well below 60 fps on two cores; 120 frames take ~15 s.
            await waitUntil(
              `120 decoded ${codec} frames`,
              () => stat(client.video, "frames_decoded") >= 120,
              90_000,
            );
            assertEquals(client.video!.stats().width, 1280);
            const status = await (await fetch(`${api}/status`)).json();
            assertEquals(status.stream.codec, statusName);
            assertEquals(xmlTag(await client.httpsGet("/cancel"), "cancel"), "1");
            await client.close();
          },
        });
      }

      await t.step(
        "5 % video loss with the default FEC: ≥ 99 % of frames decodable; unpairing ends it",
        async () => {
          const launch = await client.launch(MODE);
          const stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, MODE);
          await client.startStreams(stream, { packetSize: MODE.packetSize, videoLossPpm: 50_000 });
          // The client asks for an IDR whenever a frame is lost beyond FEC, as Moonlight does.
          await waitUntil(
            "300 frames through 5 % loss",
            () => stat(client.video, "last_frame_index") >= 300,
            40_000,
          );
          const stats = client.video!.stats() as Record<string, number>;
          const total = stats.last_frame_index;
          assert(stats.datagrams_dropped_impairment > 100, JSON.stringify(stats));
          assert(stats.shards_recovered > 0, JSON.stringify(stats));
          assert(
            stats.frames_decoded / total >= 0.99,
            `decodable ${stats.frames_decoded}/${total}: ${JSON.stringify(stats)}`,
          );

          const ports = gameStreamPorts(base);
          assert(!udpPortIsFree(ports.video), "the session's video socket is bound while it streams");
          const fingerprint = (await (await fetch(`${api}/clients`)).json())[0].fingerprint;
          const removed = await fetch(`${api}/clients/${fingerprint}`, { method: "DELETE" });
          assertEquals(removed.status, 204);
          await removed.body?.cancel();
          await waitUntil(
            "the stream to end after unpairing",
            async () =>
              client.control!.received.some((m) => m.type === 0x0109) &&
              !(await (await fetch(`${api}/status`)).json()).video_streaming,
          );
          // Once the session's media sockets are closed (their ports bind again) nothing more can be sent.
          await waitUntil(
            "the host to close the video and audio sockets after unpairing",
            () => udpPortIsFree(ports.video) && udpPortIsFree(ports.audio),
          );
          assertEquals(xmlStatus(await client.httpsGet("/applist")), 401);
        },
      );
    } finally {
      for (const c of clients) await c.close();
      await host.cleanup();
    }
  },
});
