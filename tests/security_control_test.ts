/**
 * Issue 15, findings 4 (media ping, ENet connect) and 5 (control port): a stranger on the LAN — 127.0.0.2…9
 * stand in for other machines — who sniffed the plain-RTSP SETUP replies (X-SS-Ping-Payload,
 * X-SS-Connect-Data) attacks a live `serve --gamestream` session. The secrets are taken from the real client's
 * own handshake, as the attacker would read them off the wire.
 *
 * Defended outcome: media stays with the owner and the stranger receives no media datagram; the stranger's ENet
 * connect is refused and the owner connects; 200 garbage datagrams from 200 address:ports do not keep the
 * owner's CONNECT from being answered; a replayed or forged control message changes nothing and the session
 * goes on.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  startGameStreamHost,
  submitPinWhenAsked,
  waitUntil as waitUntilOr,
} from "./gamestream_client/host_harness.ts";
import { GameStreamTestClient, xmlTag } from "./gamestream_client/client.ts";
import type { LaunchedStream } from "./gamestream_client/client.ts";
import { EnetClientPeer } from "./gamestream_client/enet_client.ts";
import type { MediaSessionHandle } from "../host/native_abi.ts";

const MODE = { width: 640, height: 360, fps: 30, bitrateKbps: 4_000, packetSize: 1024 };
/** Above the 128 peers the control port used to hold, so the old code's table is full. */
const GARBAGE_DATAGRAMS = 200;

let describeState = () => "";
const waitUntil = <T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000) =>
  waitUntilOr(what, probe, timeoutMs, () => describeState());

const stat = (handle: MediaSessionHandle | null, name: string) => Number(handle?.stats()[name] ?? 0);

/** A UDP socket on another loopback address that counts every datagram it receives. */
function strangerSocket(ip: string) {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: ip, port: 0 });
  let received = 0;
  const receiving = (async () => {
    try {
      for (;;) {
        await socket.receive();
        received++;
      }
    } catch { /* closed */ }
  })();
  return {
    socket,
    get received() {
      return received;
    },
    send: (bytes: Uint8Array, port: number) =>
      socket.send(bytes, { transport: "udp", hostname: "127.0.0.1", port }).catch(() => {}),
    close: async () => {
      try {
        socket.close();
      } catch { /* already closed */ }
      await receiving;
    },
  };
}

/** A media ping as Moonlight sends it: the 16-byte payload then a big-endian counter. */
function mediaPing(payload: string, counter: number): Uint8Array {
  const out = new Uint8Array(20);
  out.set(new TextEncoder().encode(payload));
  new DataView(out.buffer).setUint32(16, counter);
  return out;
}

const logLines = (log: string, ...needles: string[]) =>
  log.split("\n").filter((line) => needles.every((n) => line.includes(n)));

Deno.test({
  name:
    "security: a stranger with the sniffed ping payload and connect data cannot take or disturb the session",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const { host, base, api } = await startGameStreamHost();
    const client = new GameStreamTestClient("127.0.0.1", base);
    const strangerVideo = strangerSocket("127.0.0.2");
    const strangerAudio = strangerSocket("127.0.0.2");
    const strangerControl = strangerSocket("127.0.0.2");
    let pinging: ReturnType<typeof setInterval> | undefined;
    describeState = () =>
      [
        `video: ${JSON.stringify(client.video?.stats() ?? null)}`,
        `audio: ${JSON.stringify(client.audio?.stats() ?? null)}`,
        `stranger received: video ${strangerVideo.received}, audio ${strangerAudio.received}`,
        `host log (last 30 lines):`,
        ...host.stderr().trimEnd().split("\n").slice(-30),
      ].join("\n");
    try {
      let stream: LaunchedStream;
      await t.step(
        "the owner pairs, launches and completes RTSP; the stranger reads the secrets",
        async () => {
          assertEquals(await client.pair("2468", submitPinWhenAsked(api, "2468")), "paired");
          const launch = await client.launch(MODE);
          stream = await client.handshake(xmlTag(launch.xml, "sessionUrl0")!, launch, MODE);
          assertEquals(stream.pingPayload.length, 16);
          await waitUntil("both media senders listening", async () => {
            const status = await (await fetch(`${api}/status`)).json();
            return status.video_streaming && status.audio_streaming;
          });
        },
      );

      await t.step("the stranger pings video and audio first, and keeps pinging", () => {
        let counter = 0;
        const ping = () => {
          counter++;
          strangerVideo.send(mediaPing(stream.pingPayload, counter), stream.ports.video);
          strangerAudio.send(mediaPing(stream.pingPayload, counter), stream.ports.audio);
        };
        ping();
        pinging = setInterval(ping, 50);
      });

      await t.step("the stranger's ENet CONNECT with the leaked connect data is refused", async () => {
        const peer = new EnetClientPeer();
        for (const d of peer.connect(stream.connectData, performance.now()).datagrams) {
          strangerControl.send(d, stream.ports.control);
        }
        const strangerPort = (strangerControl.socket.addr as Deno.NetAddr).port;
        await waitUntil(
          "the refusal in the host log",
          () => logLines(host.stderr(), "control connect refused", `127.0.0.2:${strangerPort}`).length > 0,
        );
        assertEquals(strangerControl.received, 0, "not even a VERIFY_CONNECT reaches the stranger");
      });

      await t.step(`${GARBAGE_DATAGRAMS} garbage datagrams from as many address:ports`, async () => {
        for (let i = 0; i < GARBAGE_DATAGRAMS; i++) {
          const from = strangerSocket(`127.0.0.${3 + (i % 7)}`);
          await from.send(crypto.getRandomValues(new Uint8Array(8 + (i % 64))), stream.ports.control);
          await from.close();
        }
      });

      await t.step(
        "the owner streams: every frame and audio packet decodes, the stranger gets nothing",
        async () => {
          const started = performance.now();
          await client.startStreams(stream, { packetSize: MODE.packetSize });
          const connectMs = performance.now() - started;
          // The issue measured a 15 s lock-out after the garbage; "promptly" is well inside Moonlight's 10 s.
          assert(connectMs < 5_000, `control connect took ${connectMs.toFixed(0)} ms`);
          await waitUntil("90 decoded frames", () => stat(client.video, "frames_decoded") >= 90, 30_000);
          await waitUntil("decoded audio", () => stat(client.audio, "packets_decoded") >= 100);
          assertEquals(stat(client.video, "frames_lost"), 0, JSON.stringify(client.video!.stats()));
          assertEquals(stat(client.audio, "decryption_failures"), 0);
          assertEquals(strangerVideo.received, 0, "no video datagram reached the stranger");
          assertEquals(strangerAudio.received, 0, "no audio datagram reached the stranger");
        },
      );

      await t.step("a replayed input and a forged message change nothing; the session goes on", async () => {
        const control = client.control!;
        // Input is logged as kind and counts, never key codes (no keystrokes in logs): one line per injected key.
        const keyEvents = () => logLines(host.stderr(), "input event recorded", '"kind":"key"').length;
        const captured = control.sendInput({
          kind: "key",
          down: true,
          keyCode: 0x42,
          modifiers: 0,
          flags: 0,
        })!;
        await waitUntil("the genuine key press", () => keyEvents() === 1);
        // Replays: the same datagrams from the owner's socket, from a stranger's, and the envelope in a fresh
        // ENet command (only the envelope's own sequence number can catch that one).
        for (const d of captured.datagrams) {
          control.sendRaw(d);
          await strangerControl.send(d, stream.ports.control);
        }
        control.sendSealed(captured.envelope, 2);
        const forged = captured.envelope.slice();
        new DataView(forged.buffer).setUint32(4, 0x7fff_0000, true);
        control.sendSealed(forged, 2);
        // A fresh key press on the same channel is delivered after all of the above.
        control.sendInput({ kind: "key", down: true, keyCode: 0x43, modifiers: 0, flags: 0 });
        await waitUntil("the next genuine key press", () => keyEvents() >= 2);
        assertEquals(keyEvents(), 2, "the replayed key press was not injected again");
        assert(logLines(host.stderr(), "control message dropped", '"reason":"replayed"').length >= 1);
        assert(logLines(host.stderr(), "control message dropped", '"reason":"tag"').length >= 1);
        const frames = stat(client.video, "frames_decoded");
        await waitUntil(
          "more frames after the forgery",
          () => stat(client.video, "frames_decoded") > frames + 15,
        );
        const status = await (await fetch(`${api}/status`)).json();
        assertEquals(status.video_streaming, true);
        assert(!control.disconnected, "the control stream is still up");
      });
    } finally {
      clearInterval(pinging);
      await client.close();
      await Promise.all([strangerVideo.close(), strangerAudio.close(), strangerControl.close()]);
      await host.cleanup();
    }
  },
});
