/** The RTSP socket edge over real loopback sockets: owner gate, sealed framing, refusals counted and logged. */
import { assert, assertEquals } from "../tests/assert.ts";
import { Logger } from "../host/log.ts";
import { gameStreamPorts, RtspSession, type RtspSessionContext } from "./rtsp.ts";
import { openRtspMessage, sealRtspMessage } from "./rtsp_encryption.ts";
import { startRtspServer } from "./rtsp_server.ts";
import { tcpExchange } from "../tests/gamestream_client/client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const KEY = crypto.getRandomValues(new Uint8Array(16));
const CONTEXT: RtspSessionContext = {
  ports: gameStreamPorts(),
  codecSupport: { h264: true, hevc: false, av1: false },
  audioChannelCounts: [2],
  videoEncryption: "opportunistic",
  hostFeatureFlags: 0,
  supportsReferenceFrameInvalidation: false,
  pingPayload: "0123456789ABCDEF",
  connectData: 7,
  sessionId: "DEADBEEFCAFE",
  owner: "127.0.0.1",
};
const SETUP = encoder.encode(
  "SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 1\r\nX-GS-ClientVersion: 14\r\nHost: 127.0.0.1\r\n\r\n",
);

async function withServer(
  session: RtspSession,
  run: (port: number, lines: string[], refusals: () => Record<string, number>) => Promise<void>,
) {
  const lines: string[] = [];
  const log = new Logger("test", { level: "debug", format: "json", sink: (line) => lines.push(line) });
  const server = startRtspServer({
    bind: "127.0.0.1",
    port: 0,
    session: () => session,
    onActions: () => {},
    log,
  });
  try {
    await run(server.port, lines, server.refusals);
  } finally {
    server.close();
  }
}

const send = async (port: number, bytes: Uint8Array, from = "127.0.0.1") => {
  try {
    return await tcpExchange("127.0.0.1", port, bytes, from);
  } catch {
    return new Uint8Array(0); // reset by the host
  }
};

Deno.test("rtsp_server: plain RTSP serves the owner, answers a stranger 403 and counts it", async () => {
  await withServer(new RtspSession(CONTEXT), async (port, lines, refusals) => {
    const stranger = decoder.decode(await send(port, SETUP, "127.0.0.2"));
    assert(stranger.startsWith("RTSP/1.0 403 Forbidden\r\nCSeq: 1\r\n"), stranger);
    assert(!stranger.includes("X-SS-"), stranger);
    const owner = decoder.decode(await send(port, SETUP));
    assert(owner.includes("X-SS-Ping-Payload: 0123456789ABCDEF"), owner);
    assertEquals(refusals(), { stranger: 1 });
    assert(
      lines.some((line) => line.includes("rtsp request refused") && line.includes("127.0.0.2")),
      lines.join(),
    );
  });
});

Deno.test("rtsp_server: rtspenc answers the key holder sealed; plain text, strangers and replays get a bare status", async () => {
  await withServer(new RtspSession({ ...CONTEXT, encryptionKey: KEY }), async (port, _lines, refusals) => {
    const sealed = sealRtspMessage(KEY, 1, "client_to_host", SETUP);
    // A stranger holding even a valid frame is refused before decryption, so the owner's sequence 1 stays usable.
    assertEquals(
      decoder.decode(await send(port, sealed, "127.0.0.3")),
      "RTSP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    );
    const reply = openRtspMessage(KEY, "host_to_client", await send(port, sealed));
    assertEquals(reply.sequence, 1);
    assert(decoder.decode(reply.plaintext).includes("X-SS-Ping-Payload"));

    const bare = "RTSP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    assertEquals(decoder.decode(await send(port, sealed)), bare); // replayed
    const withTrailer = new Uint8Array(sealed.length + 1);
    withTrailer.set(sealRtspMessage(KEY, 5, "client_to_host", SETUP));
    assertEquals(decoder.decode(await send(port, withTrailer)), bare);
    const forged = sealRtspMessage(crypto.getRandomValues(new Uint8Array(16)), 9, "client_to_host", SETUP);
    assertEquals(decoder.decode(await send(port, forged)), bare);
    const plain = decoder.decode(await send(port, SETUP));
    assert(plain === "" || plain === bare, plain);
    // Two requests in one sealed frame are not one request.
    const doubled = new Uint8Array([...SETUP, ...SETUP]);
    const double = openRtspMessage(
      KEY,
      "host_to_client",
      await send(port, sealRtspMessage(KEY, 6, "client_to_host", doubled)),
    );
    assert(decoder.decode(double.plaintext).startsWith("RTSP/1.0 400"), decoder.decode(double.plaintext));
    // The owner still gets on with the next sequence number.
    const next = openRtspMessage(
      KEY,
      "host_to_client",
      await send(port, sealRtspMessage(KEY, 7, "client_to_host", SETUP)),
    );
    assert(decoder.decode(next.plaintext).startsWith("RTSP/1.0 200"));
    assertEquals(refusals(), {
      stranger: 1,
      replayed: 1,
      trailing_bytes: 1,
      authentication_failed: 1,
      not_encrypted: 1,
      malformed: 1,
    });
  });
});
