// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  gameStreamPorts,
  RTSP_MAX_BODY_BYTES,
  RTSP_MAX_HEAD_BYTES,
  RTSP_MAX_HEADERS,
  RtspHeaders,
  RtspParseError,
  type RtspRequest,
  RtspRequestParser,
  RtspSession,
  type RtspSessionContext,
  serializeResponse,
  UNSUPPORTED_STREAM_REASON,
} from "./rtsp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The §5.7 example ANNOUNCE body, as MLC sends it (trailing space on every `a=` line, CRLF endings). */
const ANNOUNCE_SDP = [
  "v=0",
  "o=android 0 14 IN IPv4 192.168.1.10",
  "s=NVIDIA Streaming Client",
  ...[
    "x-ml-general.featureFlags:3",
    "x-ss-general.encryptionEnabled:5",
    "x-ss-video[0].chromaSamplingType:0",
    "x-nv-video[0].clientViewportWd:1920",
    "x-nv-video[0].clientViewportHt:1080",
    "x-nv-video[0].maxFPS:60",
    "x-nv-video[0].packetSize:1392",
    "x-nv-video[0].rateControlMode:4",
    "x-nv-video[0].timeoutLengthMs:7000",
    "x-nv-video[0].framesWithInvalidRefThreshold:0",
    "x-nv-video[0].initialBitrateKbps:16000",
    "x-nv-video[0].initialPeakBitrateKbps:16000",
    "x-nv-vqos[0].bw.minimumBitrateKbps:16000",
    "x-nv-vqos[0].bw.maximumBitrateKbps:16000",
    "x-ml-video.configuredBitrateKbps:20000",
    "x-nv-vqos[0].fec.enable:1",
    "x-nv-vqos[0].videoQualityScoreUpdateTime:5000",
    "x-nv-vqos[0].qosTrafficType:5",
    "x-nv-aqos.qosTrafficType:4",
    "x-nv-general.featureFlags:167",
    "x-nv-general.useReliableUdp:13",
    "x-nv-vqos[0].fec.minRequiredFecPackets:2",
    "x-nv-vqos[0].bllFec.enable:0",
    "x-nv-vqos[0].drc.enable:0",
    "x-nv-general.enableRecoveryMode:0",
    "x-nv-video[0].videoEncoderSlicesPerFrame:1",
    "x-nv-clientSupportHevc:0",
    "x-nv-vqos[0].bitStreamFormat:0",
    "x-nv-video[0].dynamicRangeMode:0",
    "x-nv-video[0].maxNumReferenceFrames:1",
    "x-nv-video[0].clientRefreshRateX100:6000",
    "x-nv-audio.surround.numChannels:2",
    "x-nv-audio.surround.channelMask:3",
    "x-nv-audio.surround.enable:0",
    "x-nv-audio.surround.AudioQuality:0",
    "x-nv-aqos.packetDuration:5",
    "x-nv-video[0].encoderCscMode:2",
  ].map((attribute) => `a=${attribute} `),
  "t=0 0",
  "m=video 47998  ",
].map((line) => `${line}\r\n`).join("");

/** A request laid out as MLC serializes it (§5.2). */
function mlcRequest(
  method: string,
  target: string,
  cseq: number,
  extraHeaders: Array<[string, string]> = [],
  body = "",
): string {
  const headers: Array<[string, string]> = [
    ["CSeq", String(cseq)],
    ["X-GS-ClientVersion", "14"],
    ["Host", "192.168.1.20"],
    ...extraHeaders,
  ];
  if (body) {
    headers.push(["Content-type", "application/sdp"], [
      "Content-length",
      String(encoder.encode(body).length),
    ]);
  }
  return `${method} ${target} RTSP/1.0\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n${body}`;
}

function parseOne(text: string): RtspRequest {
  const { requests, error } = new RtspRequestParser().feed(encoder.encode(text));
  assertEquals(error, null);
  assertEquals(requests.length, 1);
  return requests[0];
}

function parseError(...chunks: Array<string | Uint8Array>): RtspParseError | null {
  const parser = new RtspRequestParser();
  let error: RtspParseError | null = null;
  for (const chunk of chunks) {
    error = parser.feed(typeof chunk === "string" ? encoder.encode(chunk) : chunk).error;
  }
  return error;
}

function summary(request: RtspRequest): unknown {
  return { ...request, headers: request.headers.entries(), body: decoder.decode(request.body) };
}

/** The address that launched the session in these tests (the client of the §5.7 example). */
const OWNER = "192.168.1.10";

const CONTEXT: RtspSessionContext = {
  ports: gameStreamPorts(),
  codecSupport: { h264: true, hevc: true, av1: false },
  audioChannelCounts: [2, 6, 8],
  videoEncryption: "opportunistic",
  hostFeatureFlags: 3,
  supportsReferenceFrameInvalidation: true,
  pingPayload: "0123456789ABCDEF",
  connectData: 3735928559,
  sessionId: "DEADBEEFCAFE",
  owner: OWNER,
};

// ---------------------------------------------------------------------------------------------------------------

Deno.test("gameStreamPorts: §1.2 port map from the default base and a shifted base", () => {
  assertEquals(gameStreamPorts(), {
    https: 47984,
    http: 47989,
    video: 47998,
    control: 47999,
    audio: 48000,
    rtsp: 48010,
  });
  assertEquals(gameStreamPorts(50000).rtsp, 50021);
  assertThrows(() => gameStreamPorts(65520), /outside/);
  assertThrows(() => gameStreamPorts(5), /outside/);
  assertThrows(() => gameStreamPorts(47989.5), /outside/);
});

Deno.test("RtspRequestParser: an ANNOUNCE with body, headers looked up in any case", () => {
  const request = parseOne(
    mlcRequest("ANNOUNCE", "streamid=control/13/0", 6, [["Session", "DEADBEEFCAFE"]], ANNOUNCE_SDP),
  );
  assertEquals([request.method, request.uri, request.version, request.cseq], [
    "ANNOUNCE",
    "streamid=control/13/0",
    "RTSP/1.0",
    6,
  ]);
  assertEquals(request.headers.get("content-LENGTH"), String(ANNOUNCE_SDP.length));
  assertEquals(request.headers.get("session"), "DEADBEEFCAFE");
  assertEquals(request.headers.get("Missing"), null);
  assertEquals(decoder.decode(request.body), ANNOUNCE_SDP);
});

Deno.test("RtspRequestParser: header values are trimmed, CSeq must be decimal", () => {
  const request = parseOne("OPTIONS rtsp://0.0.0.0:48010 RTSP/1.0\r\nCSeq:   7  \r\nX-Empty:\r\n\r\n");
  assertEquals(request.cseq, 7);
  assertEquals(request.headers.get("X-Empty"), "");
  assertEquals(parseOne("OPTIONS / RTSP/1.0\r\nCSeq: 0x7\r\n\r\n").cseq, null);
  assertEquals(parseOne("OPTIONS / RTSP/1.0\r\nX: 1\r\n\r\n").cseq, null);
  assertEquals(parseOne("OPTIONS / RTSP/1.0\r\n\r\n").headers.size, 0);
});

Deno.test("RtspRequestParser: the same requests whether split at every byte or merged into one read", () => {
  const stream = [
    mlcRequest("OPTIONS", "rtsp://0.0.0.0:48010", 1),
    mlcRequest("ANNOUNCE", "streamid=control/13/0", 2, [], ANNOUNCE_SDP),
    mlcRequest("PLAY", "/", 3),
  ].join("");
  const bytes = encoder.encode(stream);
  const merged = new RtspRequestParser().feed(bytes);
  assertEquals(merged.error, null);
  assertEquals(merged.requests.map((request) => [request.method, request.cseq]), [
    ["OPTIONS", 1],
    ["ANNOUNCE", 2],
    ["PLAY", 3],
  ]);

  const byteWise = new RtspRequestParser();
  const collected: RtspRequest[] = [];
  for (const byte of bytes) collected.push(...byteWise.feed(Uint8Array.of(byte)).requests);
  assertEquals(collected.map(summary), merged.requests.map(summary));
  assertEquals(byteWise.bufferedBytes, 0);

  for (let cut = 0; cut <= bytes.length; cut += 7) {
    const parser = new RtspRequestParser();
    const first = parser.feed(bytes.subarray(0, cut));
    const second = parser.feed(bytes.subarray(cut));
    assertEquals(
      [...first.requests, ...second.requests].map(summary),
      merged.requests.map(summary),
      `cut ${cut}`,
    );
  }
});

Deno.test("RtspRequestParser: an incomplete body waits for more bytes", () => {
  const parser = new RtspRequestParser();
  const head = "ANNOUNCE x RTSP/1.0\r\nCSeq: 1\r\nContent-length: 5\r\n\r\n";
  assertEquals(parser.feed(encoder.encode(`${head}abc`)).requests, []);
  assertEquals(parser.bufferedBytes, 3);
  const { requests } = parser.feed(encoder.encode("deOPTIONS"));
  assertEquals(decoder.decode(requests[0].body), "abcde");
  assertEquals(parser.bufferedBytes, "OPTIONS".length);
});

Deno.test("RtspRequestParser: head size limit", () => {
  const header = (bytes: number) => `OPTIONS / RTSP/1.0\r\nX: ${"a".repeat(bytes - 27)}\r\n\r\n`;
  assertEquals(encoder.encode(header(RTSP_MAX_HEAD_BYTES)).length, RTSP_MAX_HEAD_BYTES);
  assertEquals(parseOne(header(RTSP_MAX_HEAD_BYTES)).method, "OPTIONS");
  assertEquals(parseError(header(RTSP_MAX_HEAD_BYTES + 1))?.code, "head_too_large");
  // Without an end of headers the parser gives up once the limit is reached, even when fed byte by byte.
  const endless = encoder.encode(`OPTIONS / RTSP/1.0\r\nX: ${"a".repeat(RTSP_MAX_HEAD_BYTES)}`);
  const parser = new RtspRequestParser();
  let error: RtspParseError | null = null;
  for (let i = 0; i < endless.length && error === null; i += 100) {
    error = parser.feed(endless.subarray(i, i + 100)).error;
  }
  assertEquals(error?.code, "head_too_large");
  assert(parser.bufferedBytes === 0);
});

Deno.test("RtspRequestParser: header count and body size limits", () => {
  const withHeaders = (count: number) =>
    `OPTIONS / RTSP/1.0\r\n${Array.from({ length: count }, (_, i) => `H${i}: ${i}\r\n`).join("")}\r\n`;
  assertEquals(parseOne(withHeaders(RTSP_MAX_HEADERS)).headers.size, RTSP_MAX_HEADERS);
  assertEquals(parseError(withHeaders(RTSP_MAX_HEADERS + 1))?.code, "too_many_headers");

  const withBody = (length: number) =>
    `ANNOUNCE / RTSP/1.0\r\nContent-Length: ${length}\r\n\r\n${"x".repeat(length)}`;
  assertEquals(parseOne(withBody(RTSP_MAX_BODY_BYTES)).body.length, RTSP_MAX_BODY_BYTES);
  assertEquals(parseError(withBody(RTSP_MAX_BODY_BYTES + 1))?.code, "body_too_large");
});

Deno.test("RtspRequestParser: malformed input gives a typed error that sticks", () => {
  const cases: Array<[string, string]> = [
    ["OPTIONS\r\n\r\n", "malformed_request_line"],
    ["OPTIONS / HTTP/1.1\r\n\r\n", "malformed_request_line"],
    ["OPTIONS  / RTSP/1.0\r\n\r\n", "malformed_request_line"],
    ["OPTIONS / RTSP/1.0\r\nno colon\r\n\r\n", "malformed_header"],
    ["OPTIONS / RTSP/1.0\r\nCSeq: 1\r\n folded\r\n\r\n", "malformed_header"],
    ["OPTIONS / RTSP/1.0\r\n: empty name\r\n\r\n", "malformed_header"],
    ["OPTIONS / RTSP/1.0\r\nContent-Length: -1\r\n\r\n", "invalid_content_length"],
    ["OPTIONS / RTSP/1.0\r\nContent-Length: 1e3\r\n\r\n", "invalid_content_length"],
    ["OPTIONS / RTSP/1.0\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n", "invalid_content_length"],
  ];
  for (const [text, code] of cases) assertEquals(parseError(text)?.code, code, JSON.stringify(text));

  const parser = new RtspRequestParser();
  const first = parser.feed(encoder.encode("OPTIONS / RTSP/1.0\r\nCSeq: 1\r\n\r\nBAD\r\n\r\n"));
  assertEquals(first.requests.length, 1); // the good request before the bad one is still delivered
  assertEquals(first.error?.code, "malformed_request_line");
  const later = parser.feed(encoder.encode("OPTIONS / RTSP/1.0\r\nCSeq: 2\r\n\r\n"));
  assertEquals([later.requests.length, later.error?.code], [0, "malformed_request_line"]);
});

Deno.test("RtspHeaders: getAll and entries keep order and spelling", () => {
  const headers = new RtspHeaders([["A", "1"], ["b", "2"], ["a", "3"]]);
  assertEquals(headers.getAll("a"), ["1", "3"]);
  assertEquals(headers.entries(), [["A", "1"], ["b", "2"], ["a", "3"]]);
});

Deno.test("serializeResponse: status line, CSeq first, one space after the colon, CRLF, body", () => {
  const bytes = serializeResponse({
    status: 200,
    reason: "OK",
    cseq: 3,
    headers: [["Session", "DEADBEEFCAFE;timeout = 90"], ["Transport", "server_port=48000"]],
    body: "a=x\n",
  });
  assertEquals(
    decoder.decode(bytes),
    "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\n\r\na=x\n",
  );
  // MLC needs at least one header line.
  assertEquals(
    decoder.decode(serializeResponse({ status: 400, reason: "Bad Request", cseq: null })),
    "RTSP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
  );
  assertThrows(
    () => serializeResponse({ status: 200, reason: "OK", cseq: 1, headers: [["X", "a\r\nY: b"]] }),
    /CR/,
  );
  assertThrows(() => serializeResponse({ status: 200, reason: "OK\r\n", cseq: 1 }), /CR/);
  assertThrows(() => serializeResponse({ status: 200, reason: "OK", cseq: 1, headers: [["Bad Name", "x"]] }));
  assertThrows(() => serializeResponse({ status: 20, reason: "OK", cseq: 1 }));
});

Deno.test("RtspSession: DESCRIBE body lists features, codecs and surround layouts", () => {
  const session = new RtspSession({ ...CONTEXT, clientSurroundParams: "660012345" });
  assertEquals(
    session.describeBody(),
    [
      "a=x-ss-general.featureFlags:3",
      "a=x-ss-general.encryptionSupported:7",
      "a=x-ss-general.encryptionRequested:1",
      "a=x-nv-video[0].refPicInvalidation:1",
      "sprop-parameter-sets=AAAAAU",
      "a=fmtp:97 surround-params=660012345",
      "a=fmtp:97 surround-params=660012345",
      "a=fmtp:97 surround-params=21101",
      "a=fmtp:97 surround-params=21101",
      "a=fmtp:97 surround-params=642012453",
      "a=fmtp:97 surround-params=660012345",
      "a=fmtp:97 surround-params=85301245367",
      "a=fmtp:97 surround-params=88001234567",
      "",
    ].join("\n"),
  );
  const minimal = new RtspSession({
    ...CONTEXT,
    codecSupport: { h264: true, hevc: false, av1: true },
    audioChannelCounts: [2],
    videoEncryption: "mandatory",
    supportsReferenceFrameInvalidation: false,
    hostFeatureFlags: 0,
  });
  assertEquals(
    minimal.describeBody(),
    "a=x-ss-general.featureFlags:0\na=x-ss-general.encryptionSupported:7\na=x-ss-general.encryptionRequested:7\n" +
      "a=rtpmap:98 AV1/90000\na=fmtp:97 surround-params=21101\na=fmtp:97 surround-params=21101\n",
  );
  const never = new RtspSession({ ...CONTEXT, videoEncryption: "never" }).describeBody();
  assert(never.includes("encryptionSupported:5\n"), never);
});

Deno.test("RtspSession: the full MLC sequence over one connection per request", () => {
  const session = new RtspSession(CONTEXT);
  const url = "rtsp://192.168.1.20:48010";
  const modified = ["If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT"] as [string, string];
  const transport = ["Transport", "unicast;X-GS-ClientPort=50000-50001"] as [string, string];
  const sessionHeader = ["Session", "DEADBEEFCAFE"] as [string, string];
  const exchange = (text: string) => {
    const result = session.handle(parseOne(text), OWNER);
    return { ...result, text: decoder.decode(serializeResponse(result.response)) };
  };

  const options = exchange(mlcRequest("OPTIONS", url, 1));
  assertEquals(
    options.text,
    "RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, ANNOUNCE, PLAY, TEARDOWN\r\n\r\n",
  );

  const describe = exchange(
    mlcRequest("DESCRIBE", url, 2, [["Accept", "application/sdp"], modified]),
  );
  assertEquals(describe.response.status, 200);
  assert(describe.text.endsWith(`\r\n\r\n${session.describeBody()}`));
  assert(describe.text.includes("sprop-parameter-sets=AAAAAU"));

  const audio = exchange(mlcRequest("SETUP", "streamid=audio/0/0", 3, [transport, modified]));
  assertEquals(
    audio.text,
    "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\n" +
      "X-SS-Ping-Payload: 0123456789ABCDEF\r\n\r\n",
  );
  const video = exchange(mlcRequest("SETUP", "streamid=video/0/0", 4, [sessionHeader, transport, modified]));
  assertEquals(
    video.text,
    "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=47998\r\n" +
      "X-SS-Ping-Payload: 0123456789ABCDEF\r\n\r\n",
  );
  const control = exchange(
    mlcRequest("SETUP", "streamid=control/13/0", 5, [sessionHeader, transport, modified]),
  );
  assertEquals(
    control.text,
    "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=47999\r\n" +
      "X-SS-Connect-Data: 3735928559\r\n\r\n",
  );
  assertEquals(session.state, "setting_up");

  const announce = exchange(
    mlcRequest("ANNOUNCE", "streamid=control/13/0", 6, [sessionHeader], ANNOUNCE_SDP),
  );
  assertEquals([announce.text, announce.actions], ["RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n", []]);
  assertEquals(session.state, "announced");
  assertEquals(session.negotiated?.parameters.video.width, 1920);

  const play = exchange(mlcRequest("PLAY", "/", 7, [sessionHeader]));
  assertEquals(play.text, "RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n");
  assertEquals(play.actions.length, 1);
  const action = play.actions[0];
  assert(action.type === "start_streams");
  assertEquals(action.streams.parameters.video.maxFps, 60);
  assertEquals(action.streams.parameters.audio.channelCount, 2);
  assertEquals(action.streams.audioHighQuality, true); // Host is not 0.0.0.0
  assertEquals(action.streams.ports, { video: 47998, control: 47999, audio: 48000 });
  assertEquals([action.streams.pingPayload, action.streams.connectData], ["0123456789ABCDEF", 3735928559]);

  const secondPlay = exchange(mlcRequest("PLAY", "streamid=audio", 8, [sessionHeader]));
  assertEquals([secondPlay.response.status, secondPlay.actions], [200, []]);

  const teardown = exchange(mlcRequest("TEARDOWN", "/", 9, [sessionHeader]));
  assertEquals([teardown.response.status, teardown.actions], [200, [{ type: "stop_streams" }]]);
  assertEquals(session.state, "torn_down");
  assertEquals(session.handle(parseOne(mlcRequest("TEARDOWN", "/", 10)), OWNER).actions, []);
});

function readySession(context: RtspSessionContext = CONTEXT): RtspSession {
  const session = new RtspSession(context);
  for (const [cseq, stream] of ["audio", "video", "control"].entries()) {
    assertEquals(
      session.handle(parseOne(mlcRequest("SETUP", `streamid=${stream}/0/0`, cseq + 1)), OWNER).response
        .status,
      200,
    );
  }
  return session;
}

function announceStatus(session: RtspSession, sdp: string, host = "192.168.1.20"): number {
  const text = mlcRequest("ANNOUNCE", "streamid=control/13/0", 9, [], sdp).replace(
    "Host: 192.168.1.20",
    `Host: ${host}`,
  );
  return session.handle(parseOne(text), OWNER).response.status;
}

Deno.test("RtspSession: out-of-order and invalid requests get error statuses, never a crash", () => {
  const statusOf = (session: RtspSession, text: string) =>
    session.handle(parseOne(text), OWNER).response.status;
  const fresh = new RtspSession(CONTEXT);
  assertEquals(statusOf(fresh, mlcRequest("PLAY", "/", 1)), 455);
  assertEquals(statusOf(fresh, mlcRequest("ANNOUNCE", "streamid=control/13/0", 2, [], ANNOUNCE_SDP)), 455);
  assertEquals(statusOf(fresh, mlcRequest("SETUP", "streamid=mic/0/0", 3)), 404);
  assertEquals(statusOf(fresh, mlcRequest("SETUP", "nostream", 4)), 404);
  assertEquals(statusOf(fresh, mlcRequest("GET_PARAMETER", "/", 5)), 404);
  assertEquals(statusOf(fresh, mlcRequest("OPTIONS", "/", 6, [["Session", "OTHER"]])), 454);
  assertEquals(statusOf(fresh, "OPTIONS / RTSP/2.0\r\nCSeq: 7\r\n\r\n"), 505);
  const noCseq = fresh.handle(parseOne("OPTIONS / RTSP/1.0\r\n\r\n"), OWNER).response;
  assertEquals([noCseq.status, noCseq.cseq], [400, null]);
  assertEquals(fresh.state, "setting_up");

  const playing = readySession();
  assertEquals(announceStatus(playing, ANNOUNCE_SDP), 200);
  assertEquals(announceStatus(playing, ANNOUNCE_SDP), 455); // a second ANNOUNCE
  assertEquals(statusOf(playing, mlcRequest("PLAY", "/", 10)), 200);
  assertEquals(statusOf(playing, mlcRequest("SETUP", "streamid=audio/0/0", 11)), 455);
  assertEquals(statusOf(playing, mlcRequest("TEARDOWN", "/", 12)), 200);
  assertEquals(statusOf(playing, mlcRequest("PLAY", "/", 13)), 455);
});

Deno.test("RtspSession: ANNOUNCE is checked against the SDP, codecs, audio and encryption policy", () => {
  const escapeRegExp = (text: string) => text.replace(/[[\].]/g, "\\$&");
  const withAttribute = (name: string, value: string) =>
    ANNOUNCE_SDP.replace(new RegExp(`${escapeRegExp(name)}:\\d+`), `${name}:${value}`);

  assertEquals(announceStatus(readySession(), ""), 400);
  assertEquals(announceStatus(readySession(), withAttribute("x-nv-video[0].maxFPS", "5000")), 400);
  assertEquals(announceStatus(readySession(), withAttribute("x-nv-vqos[0].bitStreamFormat", "2")), 400); // no AV1
  const noSurround = { ...CONTEXT, audioChannelCounts: [2] as const };
  const surround = withAttribute("x-nv-audio.surround.numChannels", "6")
    .replace("channelMask:3", "channelMask:63");
  assertEquals(announceStatus(readySession(noSurround), surround), 400);
  assertEquals(announceStatus(readySession(), surround), 200);

  const mandatory = { ...CONTEXT, videoEncryption: "mandatory" as const };
  assertEquals(announceStatus(readySession(mandatory), ANNOUNCE_SDP), 403); // enabled = CONTROL_V2 | AUDIO only
  assertEquals(
    announceStatus(readySession(mandatory), withAttribute("x-ss-general.encryptionEnabled", "7")),
    200,
  );
  const never = { ...CONTEXT, videoEncryption: "never" as const };
  assertEquals(
    announceStatus(readySession(never), withAttribute("x-ss-general.encryptionEnabled", "7")),
    400,
  );

  const lowQuality = readySession();
  assertEquals(announceStatus(lowQuality, ANNOUNCE_SDP, "0.0.0.0"), 200);
  assertEquals(lowQuality.negotiated?.audioHighQuality, false);
  const surroundSession = readySession();
  assertEquals(
    announceStatus(surroundSession, surround.replace("AudioQuality:0", "AudioQuality:1"), "0.0.0.0"),
    200,
  );
  assertEquals(surroundSession.negotiated?.audioHighQuality, true);
});

Deno.test("RtspSession: a stranger's requests get 403, no secret and no state change", () => {
  const strangers = ["192.168.1.66", "::ffff:192.168.1.66", "fe80::1", "192.168.1.100"];
  const session = new RtspSession(CONTEXT);
  const fromStranger = (text: string, stranger = strangers[0]) => {
    const result = session.handle(parseOne(text), stranger);
    const serialized = decoder.decode(serializeResponse(result.response));
    assertEquals(result.response.status, 403, serialized);
    assertEquals(result.actions, []);
    assertEquals(result.refusal?.reason, "stranger");
    assert(!serialized.includes("X-SS-") && !serialized.includes("Session:"), serialized);
    assert(!serialized.includes("0123456789ABCDEF") && !serialized.includes("3735928559"), serialized);
  };
  const setupAll = (peer: string) => {
    for (const [index, stream] of ["audio", "video", "control"].entries()) {
      fromStranger(mlcRequest("SETUP", `streamid=${stream}/0/0`, index + 1), peer);
    }
  };
  for (const stranger of strangers) setupAll(stranger);
  fromStranger(mlcRequest("OPTIONS", "/", 1));
  fromStranger(mlcRequest("DESCRIBE", "/", 2));
  fromStranger(mlcRequest("ANNOUNCE", "streamid=control/13/0", 3, [], ANNOUNCE_SDP));
  fromStranger(mlcRequest("PLAY", "/", 4));
  fromStranger(mlcRequest("TEARDOWN", "/", 5));
  assertEquals([session.state, session.negotiated], ["setting_up", null]);

  // The owner, in either spelling of its address, is served; strangers still change nothing once it plays.
  const setup = session.handle(parseOne(mlcRequest("SETUP", "streamid=audio/0/0", 6)), `::ffff:${OWNER}`);
  assertEquals([setup.response.status, setup.refusal], [200, null]);
  // Without all three SETUPs from the owner, a stranger's ANNOUNCE cannot count them.
  assertEquals(announceStatus(session, ANNOUNCE_SDP), 455);
  const playing = readySession();
  assertEquals(announceStatus(playing, ANNOUNCE_SDP), 200);
  assertEquals(playing.handle(parseOne(mlcRequest("PLAY", "/", 10)), OWNER).actions.length, 1);
  const teardown = playing.handle(parseOne(mlcRequest("TEARDOWN", "/", 11)), strangers[3]);
  assertEquals([teardown.response.status, teardown.actions], [403, []]);
  assertEquals(playing.state, "playing");
  assert(session.isOwner(OWNER) && session.isOwner(`::FFFF:${OWNER}`) && !session.isOwner("192.168.1.1"));
});

Deno.test("RtspSession: an ANNOUNCE the native core cannot stream is refused before PLAY", () => {
  const escapeRegExp = (text: string) => text.replace(/[[\].]/g, "\\$&");
  const withAttribute = (sdp: string, name: string, value: string) =>
    sdp.replace(new RegExp(`${escapeRegExp(name)}:\\d+`), `${name}:${value}`);
  const huge = withAttribute(
    withAttribute(ANNOUNCE_SDP, "x-nv-video[0].clientViewportWd", "16384"),
    "x-nv-video[0].clientViewportHt",
    "16384",
  );
  for (
    const sdp of [
      huge,
      withAttribute(ANNOUNCE_SDP, "x-nv-video[0].packetSize", "1000"),
      withAttribute(ANNOUNCE_SDP, "x-nv-video[0].maxFPS", "960"),
    ]
  ) {
    const session = readySession();
    const text = mlcRequest("ANNOUNCE", "streamid=control/13/0", 9, [], sdp);
    const result = session.handle(parseOne(text), OWNER);
    assertEquals([result.response.status, result.response.reason], [400, UNSUPPORTED_STREAM_REASON]);
    assertEquals(result.refusal?.reason, "stream_limits");
    assertEquals([session.state, session.negotiated], ["setting_up", null]);
    assertEquals(session.handle(parseOne(mlcRequest("PLAY", "/", 10)), OWNER).response.status, 455);
  }
});

Deno.test("RtspSession: rejects a malformed launch context", () => {
  assertThrows(() => new RtspSession({ ...CONTEXT, pingPayload: "short" }), /pingPayload/);
  assertThrows(() => new RtspSession({ ...CONTEXT, owner: "" }), /owner/);
  assertThrows(() => new RtspSession({ ...CONTEXT, connectData: 2 ** 32 }), /connectData/);
  assertThrows(() => new RtspSession({ ...CONTEXT, sessionId: "a;b" }), /sessionId/);
  assertThrows(() => new RtspSession({ ...CONTEXT, clientSurroundParams: "6\n" }), /SurroundParams/);
});

// ---------------------------------------------------------------------------------------------------------------
// Fuzz

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let previous = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(previous, point));
    previous = point;
  }
  return chunks;
}

Deno.test("RtspRequestParser fuzz: random bytes in random chunks never throw and respect the limits", () => {
  const printable = fc.string({ unit: "binary-ascii", maxLength: 300 }).map((text) => encoder.encode(text));
  const requestish = fc.array(
    fc.oneof(
      fc.constantFrom("OPTIONS / RTSP/1.0\r\n", "CSeq: 1\r\n", "Content-Length: 3\r\n", "\r\n", "\r", ":"),
      fc.string({ maxLength: 20 }),
    ),
    { maxLength: 40 },
  ).map((parts) => encoder.encode(parts.join("")));
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 2000 }), printable, requestish),
      fc.array(fc.nat(), { maxLength: 8 }),
      (bytes, cuts) => {
        const parser = new RtspRequestParser();
        for (const chunk of chunked(bytes, cuts)) {
          const { requests, error } = parser.feed(chunk);
          assert(error === null || error instanceof RtspParseError);
          for (const request of requests) {
            assert(request.headers.size <= RTSP_MAX_HEADERS);
            assert(request.body.length <= RTSP_MAX_BODY_BYTES);
            assert(request.method.length + request.uri.length < RTSP_MAX_HEAD_BYTES);
          }
          assert(parser.bufferedBytes <= bytes.length);
        }
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("RtspRequestParser fuzz: chunking never changes the parsed requests", () => {
  const request = fc.record({
    method: fc.constantFrom("OPTIONS", "DESCRIBE", "SETUP", "ANNOUNCE", "PLAY"),
    cseq: fc.nat({ max: 1000 }),
    body: fc.string({ maxLength: 200 }),
  }).map(({ method, cseq, body }) => mlcRequest(method, "streamid=video/0/0", cseq, [], body));
  fc.assert(
    fc.property(
      fc.array(request, { minLength: 1, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (texts, cuts) => {
        const bytes = encoder.encode(texts.join(""));
        const whole = new RtspRequestParser().feed(bytes);
        assertEquals(whole.error, null);
        assertEquals(whole.requests.length, texts.length);
        const parser = new RtspRequestParser();
        const pieces = chunked(bytes, cuts).flatMap((chunk) => parser.feed(chunk).requests);
        assertEquals(pieces.map(summary), whole.requests.map(summary));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("RtspSession fuzz: any sequence of parsed requests yields a response, never a throw; strangers change nothing", () => {
  const request = fc.record({
    method: fc.constantFrom("OPTIONS", "DESCRIBE", "SETUP", "ANNOUNCE", "PLAY", "TEARDOWN", "PAUSE"),
    uri: fc.constantFrom("/", "streamid=audio/0/0", "streamid=video", "streamid=control/13/0", "x=", "=/"),
    session: fc.constantFrom(null, "DEADBEEFCAFE", "DEADBEEFCAFE;timeout = 90", "nope"),
    body: fc.oneof(fc.constant(ANNOUNCE_SDP), fc.string({ maxLength: 100 }), fc.constant("")),
    peer: fc.constantFrom(OWNER, `::ffff:${OWNER}`, "192.168.1.66", "::1"),
  });
  fc.assert(
    fc.property(fc.array(request, { maxLength: 12 }), (requests) => {
      const session = new RtspSession(CONTEXT);
      requests.forEach(({ method, uri, session: id, body, peer }, index) => {
        const headers: Array<[string, string]> = id === null ? [] : [["Session", id]];
        const before = [session.state, session.negotiated];
        const { response, actions } = session.handle(
          parseOne(mlcRequest(method, uri, index + 1, headers, body)),
          peer,
        );
        assert([200, 400, 403, 404, 454, 455].includes(response.status), `status ${response.status}`);
        assertEquals(response.cseq, index + 1);
        assert(actions.length <= 1);
        const serialized = decoder.decode(serializeResponse(response));
        if (!session.isOwner(peer)) {
          assertEquals([response.status, actions, [session.state, session.negotiated]], [403, [], before]);
          assert(!serialized.includes("X-SS-"), serialized);
        }
      });
    }),
    { numRuns: 1000 },
  );
});
