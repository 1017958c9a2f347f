/**
 * GameStream RTSP handshake on the host side (docs/gamestream-protocol.md §5): an incremental request parser,
 * the response serializer and a pure per-launch state machine. Sockets, the one-request-per-connection close
 * and encrypted RTSP (§5.3) belong to the caller.
 */
import { RtspHostCipher } from "./rtsp_encryption.ts";
import {
  checkNativeStreamLimits,
  parseSdp,
  SdpError,
  SS_ENC_AUDIO,
  SS_ENC_CONTROL_V2,
  SS_ENC_VIDEO,
  type StreamParameters,
} from "./sdp.ts";

// ---------------------------------------------------------------------------------------------------------------
// Ports (§1.2)

/** Offsets from the HTTP base port, as Sunshine maps them. */
export const GAMESTREAM_PORT_OFFSETS = {
  https: -5,
  http: 0,
  video: 9,
  control: 10,
  audio: 11,
  rtsp: 21,
} as const;

export const GAMESTREAM_DEFAULT_BASE_PORT = 47989;

export type GameStreamPorts = { [K in keyof typeof GAMESTREAM_PORT_OFFSETS]: number };

export function gameStreamPorts(basePort: number = GAMESTREAM_DEFAULT_BASE_PORT): GameStreamPorts {
  const lowest = basePort + GAMESTREAM_PORT_OFFSETS.https;
  const highest = basePort + GAMESTREAM_PORT_OFFSETS.rtsp;
  if (!Number.isInteger(basePort) || lowest < 1 || highest > 65535) {
    throw new RangeError(`base port ${basePort} puts GameStream ports outside 1..65535`);
  }
  const entries = Object.entries(GAMESTREAM_PORT_OFFSETS).map(([name, offset]) => [name, basePort + offset]);
  return Object.fromEntries(entries) as GameStreamPorts;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** Request line + headers, including the blank line. MLC's largest header block is a few hundred bytes. */
export const RTSP_MAX_HEAD_BYTES = 16 * 1024;
/** ANNOUNCE SDP is ≈1.7 kB; 64 KiB leaves room without letting a peer hold much memory. */
export const RTSP_MAX_BODY_BYTES = 64 * 1024;
export const RTSP_MAX_HEADERS = 64;

export type RtspParseErrorCode =
  | "head_too_large"
  | "body_too_large"
  | "too_many_headers"
  | "malformed_request_line"
  | "malformed_header"
  | "invalid_content_length";

export class RtspParseError extends Error {
  override readonly name = "RtspParseError";
  constructor(readonly code: RtspParseErrorCode, detail: string) {
    super(`${code}: ${detail}`);
  }
}

/** Header list with case-insensitive lookup; keeps the original order and spelling. */
export class RtspHeaders {
  readonly #entries: ReadonlyArray<readonly [string, string]>;

  constructor(entries: ReadonlyArray<readonly [string, string]>) {
    this.#entries = entries;
  }

  /** First value of `name` (any capitalisation), or null. */
  get(name: string): string | null {
    const wanted = name.toLowerCase();
    for (const [key, value] of this.#entries) if (key.toLowerCase() === wanted) return value;
    return null;
  }

  getAll(name: string): string[] {
    const wanted = name.toLowerCase();
    return this.#entries.filter(([key]) => key.toLowerCase() === wanted).map(([, value]) => value);
  }

  get size(): number {
    return this.#entries.length;
  }

  entries(): Array<readonly [string, string]> {
    return [...this.#entries];
  }
}

export interface RtspRequest {
  method: string;
  uri: string;
  /** e.g. "RTSP/1.0". */
  version: string;
  headers: RtspHeaders;
  /** CSeq header as a number; null when absent or not a decimal number. */
  cseq: number | null;
  body: Uint8Array;
}

export interface RtspFeedResult {
  requests: RtspRequest[];
  /** Set once the stream is unparseable; the parser then stays failed and the connection should be closed. */
  error: RtspParseError | null;
}

const HEAD_END_LENGTH = 4; // CR LF CR LF
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (RTSP\/[0-9]\.[0-9])$/;

/**
 * Incremental parser: feed it TCP reads in order; it returns every request completed so far, however the bytes
 * were split across reads.
 */
export class RtspRequestParser {
  /** Received bytes live in #storage[#start, #end); the storage grows by doubling so byte-wise reads stay linear. */
  #storage: Uint8Array = new Uint8Array(1024);
  #start = 0;
  #end = 0;
  /** Where (relative to #start) to resume the search for the end of the head. */
  #scanFrom = 0;
  #pendingHead: Omit<RtspRequest, "body"> | null = null;
  #pendingBodyLength = 0;
  #error: RtspParseError | null = null;

  feed(chunk: Uint8Array): RtspFeedResult {
    if (this.#error) return { requests: [], error: this.#error };
    this.#append(chunk);
    const requests: RtspRequest[] = [];
    try {
      for (let request = this.#next(); request; request = this.#next()) requests.push(request);
    } catch (error) {
      if (!(error instanceof RtspParseError)) throw error;
      this.#error = error;
      this.#start = this.#end = 0;
    }
    return { requests, error: this.#error };
  }

  /** Bytes received but not yet part of a complete request. */
  get bufferedBytes(): number {
    return this.#end - this.#start;
  }

  #append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#storage.length) {
      const live = this.#storage.subarray(this.#start, this.#end);
      const needed = live.length + chunk.length;
      const storage = needed > this.#storage.length
        ? new Uint8Array(Math.max(needed, this.#storage.length * 2))
        : this.#storage;
      storage.set(live); // compacts in place when the storage is reused (TypedArray.set handles overlap)
      this.#storage = storage;
      this.#start = 0;
      this.#end = live.length;
    }
    this.#storage.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  #next(): RtspRequest | null {
    if (this.#pendingHead === null) {
      const headEnd = this.#findHeadEnd();
      if (headEnd < 0) {
        if (this.bufferedBytes >= RTSP_MAX_HEAD_BYTES) {
          throw new RtspParseError("head_too_large", `no end of headers within ${RTSP_MAX_HEAD_BYTES} bytes`);
        }
        return null;
      }
      const headBytes = headEnd + HEAD_END_LENGTH;
      if (headBytes > RTSP_MAX_HEAD_BYTES) {
        throw new RtspParseError("head_too_large", `headers take ${headBytes} bytes`);
      }
      const { head, contentLength } = parseHead(
        latin1(this.#storage.subarray(this.#start, this.#start + headEnd)),
      );
      this.#pendingHead = head;
      this.#pendingBodyLength = contentLength;
      this.#start += headBytes;
      this.#scanFrom = 0;
    }
    if (this.bufferedBytes < this.#pendingBodyLength) return null;
    const bodyEnd = this.#start + this.#pendingBodyLength;
    const request: RtspRequest = { ...this.#pendingHead, body: this.#storage.slice(this.#start, bodyEnd) };
    this.#start = bodyEnd;
    this.#pendingHead = null;
    this.#pendingBodyLength = 0;
    return request;
  }

  /** Offset (relative to #start) of the CRLFCRLF ending the head, or -1. Looks no further than the head limit. */
  #findHeadEnd(): number {
    const bytes = this.#storage.subarray(this.#start, this.#end);
    const last = Math.min(bytes.length, RTSP_MAX_HEAD_BYTES + 1) - HEAD_END_LENGTH;
    for (let i = this.#scanFrom; i <= last; i++) {
      if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a && bytes[i + 2] === 0x0d && bytes[i + 3] === 0x0a) {
        return i;
      }
    }
    this.#scanFrom = Math.max(0, last + 1);
    return -1;
  }
}

function parseHead(text: string): { head: Omit<RtspRequest, "body">; contentLength: number } {
  const lines = text.split("\r\n");
  const match = REQUEST_LINE.exec(lines[0]);
  if (!match) throw new RtspParseError("malformed_request_line", JSON.stringify(lines[0].slice(0, 200)));
  const headerLines = lines.slice(1);
  if (headerLines.length > RTSP_MAX_HEADERS) {
    throw new RtspParseError(
      "too_many_headers",
      `${headerLines.length} headers, at most ${RTSP_MAX_HEADERS}`,
    );
  }
  const entries: Array<readonly [string, string]> = headerLines.map((line) => {
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    if (!TOKEN.test(name)) throw new RtspParseError("malformed_header", JSON.stringify(line.slice(0, 200)));
    return [name, line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "")] as const;
  });
  const headers = new RtspHeaders(entries);
  return {
    head: { method: match[1], uri: match[2], version: match[3], headers, cseq: parseCseq(headers) },
    contentLength: parseContentLength(headers),
  };
}

function parseCseq(headers: RtspHeaders): number | null {
  const text = headers.get("CSeq");
  return text !== null && /^[0-9]{1,9}$/.test(text) ? Number(text) : null;
}

function parseContentLength(headers: RtspHeaders): number {
  const values = headers.getAll("Content-Length");
  if (values.length === 0) return 0;
  if (values.some((value) => value !== values[0]) || !/^[0-9]{1,9}$/.test(values[0])) {
    throw new RtspParseError("invalid_content_length", JSON.stringify(values.join(", ").slice(0, 200)));
  }
  const length = Number(values[0]);
  if (length > RTSP_MAX_BODY_BYTES) {
    throw new RtspParseError("body_too_large", `${length} bytes, at most ${RTSP_MAX_BODY_BYTES}`);
  }
  return length;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Responses

export interface RtspResponse {
  status: number;
  reason: string;
  /** Echo of the request's CSeq; omitted when the request had none. */
  cseq: number | null;
  /** In send order. MLC matches names case-sensitively (`Session`, `Transport`, `X-SS-…`). */
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: string;
}

const utf8 = new TextEncoder();

/**
 * `RTSP/1.0 <status> <reason>`, CSeq first, `Name: value` lines, blank line, body — all CRLF. No Content-Length:
 * the client reads until the host closes the connection (§5.2).
 */
export function serializeResponse(response: RtspResponse): Uint8Array {
  const headers: Array<readonly [string, string]> = [];
  if (response.cseq !== null) headers.push(["CSeq", String(response.cseq)]);
  headers.push(...(response.headers ?? []));
  const body = response.body ?? "";
  // MLC rejects a response without any header (§5.2).
  if (headers.length === 0) headers.push(["Content-Length", String(utf8.encode(body).length)]);
  if (!Number.isInteger(response.status) || response.status < 100 || response.status > 999) {
    throw new RangeError(`RTSP status ${response.status} is not a 3-digit code`);
  }
  assertSingleLine("reason", response.reason);
  let text = `RTSP/1.0 ${response.status} ${response.reason}\r\n`;
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) throw new RangeError(`RTSP header name ${JSON.stringify(name)} is not a token`);
    assertSingleLine(name, value);
    text += `${name}: ${value}\r\n`;
  }
  return utf8.encode(`${text}\r\n${body}`);
}

function assertSingleLine(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new RangeError(`RTSP ${what} must not contain CR or LF`);
}

// ---------------------------------------------------------------------------------------------------------------
// Host-side session state machine (§5.4–5.7)

/** Sunshine's built-in Opus layouts as advertised in DESCRIBE (§8.5), normal then high quality per count. */
export const DEFAULT_SURROUND_PARAMS: ReadonlyArray<{ channels: 2 | 6 | 8; params: string }> = [
  { channels: 2, params: "21101" },
  { channels: 2, params: "21101" },
  { channels: 6, params: "642012453" },
  { channels: 6, params: "660012345" },
  { channels: 8, params: "85301245367" },
  { channels: 8, params: "88001234567" },
];

export type VideoEncryptionPolicy = "never" | "opportunistic" | "mandatory";

export interface RtspSessionContext {
  /** UDP ports announced in the SETUP replies. */
  ports: Pick<GameStreamPorts, "video" | "control" | "audio">;
  /** What the encoder probe found. */
  codecSupport: { h264: boolean; hevc: boolean; av1: boolean };
  /** Audio channel counts the host can capture and encode. */
  audioChannelCounts: ReadonlyArray<2 | 6 | 8>;
  /** The launch's `surroundParams` (§8.5), already validated; advertised twice before the built-in layouts. */
  clientSurroundParams?: string;
  videoEncryption: VideoEncryptionPolicy;
  /** `x-ss-general.featureFlags` (pen/touch 0x01, controller touch 0x02). */
  hostFeatureFlags: number;
  supportsReferenceFrameInvalidation: boolean;
  /** Per launch: 16 upper-case hex characters (8 random bytes), echoed by the client in every UDP ping (§5.6). */
  pingPayload: string;
  /** Per launch: random u32 the client passes as ENet connect data (§5.6). */
  connectData: number;
  /** Session id for the `Session` header; Sunshine uses the constant "DEADBEEFCAFE". */
  sessionId: string;
  /**
   * Source address of the `/launch` (or `/resume`) that created this handshake. Only this address may speak
   * RTSP to it: the SETUP replies carry the session's secrets (ping payload, connect data) and TEARDOWN, PLAY
   * and ANNOUNCE change what the host streams, so a stranger on the LAN must reach none of them.
   */
  owner: string;
  /** The launch's `rikey` when the client speaks encrypted RTSP (`rtspenc://`); absent for plain RTSP. */
  encryptionKey?: Uint8Array;
}

export type StreamKind = "audio" | "video" | "control";

export interface NegotiatedStreams {
  parameters: StreamParameters;
  /** Stereo: RTSP Host header without "0.0.0.0" (§5.6); surround: the SDP AudioQuality attribute. */
  audioHighQuality: boolean;
  ports: RtspSessionContext["ports"];
  pingPayload: string;
  connectData: number;
}

export type RtspSessionAction =
  | { type: "start_streams"; streams: NegotiatedStreams }
  | { type: "stop_streams" };

/** Why a request was refused, for the caller's counters and log; null when it was served. */
export type RtspRefusal =
  | { reason: "stranger"; detail: string }
  | { reason: "stream_limits"; detail: string };

export interface RtspSessionResult {
  response: RtspResponse;
  actions: RtspSessionAction[];
  refusal: RtspRefusal | null;
}

/** Address spelling for comparisons: v4-mapped IPv6 unwrapped, hex digits lower case. */
export function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  return mapped ? mapped[1] : lower;
}

export type RtspSessionState = "setting_up" | "announced" | "playing" | "torn_down";

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "NOT FOUND",
  454: "Session Not Found",
  455: "Method Not Valid in This State",
  505: "RTSP Version Not Supported",
};

/** Reason phrase of a 400 for an ANNOUNCE whose stream the native core cannot produce (size, rate, packets). */
export const UNSUPPORTED_STREAM_REASON = "Unsupported Stream Parameters";

const SUPPORTED_METHODS = "OPTIONS, DESCRIBE, SETUP, ANNOUNCE, PLAY, TEARDOWN";

/** One launch's handshake. Requests arrive over several TCP connections; feed them all to the same instance. */
export class RtspSession {
  #state: RtspSessionState = "setting_up";
  readonly #setUp = new Set<StreamKind>();
  #negotiated: NegotiatedStreams | null = null;
  /** Seals and opens every message of this handshake when it is encrypted; null for plain RTSP. */
  readonly cipher: RtspHostCipher | null;

  constructor(private readonly context: RtspSessionContext) {
    this.cipher = context.encryptionKey ? new RtspHostCipher(context.encryptionKey) : null;
    if (!/^[0-9A-Fa-f]{16}$/.test(context.pingPayload)) {
      throw new RangeError("pingPayload must be 16 hex characters");
    }
    if (
      !Number.isInteger(context.connectData) || context.connectData < 0 || context.connectData > 0xffff_ffff
    ) {
      throw new RangeError("connectData must be a u32");
    }
    if (!/^[0-9A-Za-z]{1,64}$/.test(context.sessionId)) {
      throw new RangeError("sessionId must be alphanumeric");
    }
    if (context.clientSurroundParams !== undefined && !/^[0-9]{4,19}$/.test(context.clientSurroundParams)) {
      throw new RangeError("clientSurroundParams must be the digit string of §8.5");
    }
    if (context.owner === "") throw new RangeError("owner must be the launching client's address");
  }

  /** True when `address` is the address that launched this session (the only one served). */
  isOwner(address: string): boolean {
    return normalizeAddress(address) === normalizeAddress(this.context.owner);
  }

  get state(): RtspSessionState {
    return this.#state;
  }

  /** Streams negotiated by ANNOUNCE, or null before. */
  get negotiated(): NegotiatedStreams | null {
    return this.#negotiated;
  }

  /**
   * Answers one request from `peer` (the TCP source address). A request from any address but the owner's is
   * refused with 403 before anything else is looked at: it changes no state and its reply carries no secret.
   */
  handle(request: RtspRequest, peer: string): RtspSessionResult {
    const cseq = request.cseq;
    if (!this.isOwner(peer)) {
      return {
        ...this.#reply(cseq, 403),
        refusal: { reason: "stranger", detail: `${request.method} from ${peer}` },
      };
    }
    if (request.version !== "RTSP/1.0") return this.#reply(cseq, 505);
    if (cseq === null) return this.#reply(null, 400);
    // A client that sends Session must send ours; absent is tolerated (older clients omit it on some requests).
    const session = request.headers.get("Session");
    if (session !== null && session.split(";")[0].trim() !== this.context.sessionId) {
      return this.#reply(cseq, 454);
    }

    switch (request.method) {
      case "OPTIONS":
        return this.#reply(cseq, 200, [["Public", SUPPORTED_METHODS]]);
      case "DESCRIBE":
        return this.#reply(cseq, 200, [], this.describeBody());
      case "SETUP":
        return this.#setup(request);
      case "ANNOUNCE":
        return this.#announce(request);
      case "PLAY":
        return this.#play(cseq);
      case "TEARDOWN":
        return this.#teardown(cseq);
      default:
        return this.#reply(cseq, 404);
    }
  }

  /** DESCRIBE reply body: only the lines MLC searches for, `\n`-terminated (§5.5). */
  describeBody(): string {
    const { context } = this;
    let supported = SS_ENC_CONTROL_V2 | SS_ENC_AUDIO;
    if (context.videoEncryption !== "never") supported |= SS_ENC_VIDEO;
    let requested = SS_ENC_CONTROL_V2;
    if (context.videoEncryption === "mandatory") requested |= SS_ENC_VIDEO | SS_ENC_AUDIO;

    const lines = [
      `a=x-ss-general.featureFlags:${context.hostFeatureFlags >>> 0}`,
      `a=x-ss-general.encryptionSupported:${supported}`,
      `a=x-ss-general.encryptionRequested:${requested}`,
    ];
    if (context.supportsReferenceFrameInvalidation) lines.push("a=x-nv-video[0].refPicInvalidation:1");
    if (context.codecSupport.hevc) lines.push("sprop-parameter-sets=AAAAAU");
    if (context.codecSupport.av1) lines.push("a=rtpmap:98 AV1/90000");
    const surround = context.clientSurroundParams === undefined
      ? []
      : [context.clientSurroundParams, context.clientSurroundParams];
    for (const layout of DEFAULT_SURROUND_PARAMS) {
      if (context.audioChannelCounts.includes(layout.channels)) surround.push(layout.params);
    }
    for (const params of surround) lines.push(`a=fmtp:97 surround-params=${params}`);
    return lines.map((line) => `${line}\n`).join("");
  }

  #setup(request: RtspRequest): RtspSessionResult {
    const cseq = request.cseq;
    if (this.#state !== "setting_up") return this.#reply(cseq, 455);
    // The text between the first "=" and the next "/" selects the stream (Sunshine's rule, §5.4).
    const equals = request.uri.indexOf("=");
    const stream = equals < 0 ? "" : request.uri.slice(equals + 1).split("/")[0];
    if (stream !== "audio" && stream !== "video" && stream !== "control") return this.#reply(cseq, 404);
    this.#setUp.add(stream);

    const headers: Array<readonly [string, string]> = [
      ["Session", `${this.context.sessionId};timeout = 90`],
      ["Transport", `server_port=${this.context.ports[stream]}`],
    ];
    if (stream === "control") headers.push(["X-SS-Connect-Data", String(this.context.connectData)]);
    else headers.push(["X-SS-Ping-Payload", this.context.pingPayload.toUpperCase()]);
    return this.#reply(cseq, 200, headers);
  }

  #announce(request: RtspRequest): RtspSessionResult {
    const cseq = request.cseq;
    if (this.#state !== "setting_up" || this.#setUp.size < 3) return this.#reply(cseq, 455);
    let parameters: StreamParameters;
    try {
      parameters = parseSdp(new TextDecoder().decode(request.body));
    } catch (error) {
      if (error instanceof SdpError) return this.#reply(cseq, 400);
      throw error;
    }
    try {
      checkNativeStreamLimits(parameters);
    } catch (error) {
      if (!(error instanceof SdpError)) throw error;
      // A well-formed request the native core cannot stream: refused here, before PLAY, with its own reason.
      return {
        ...this.#reply(cseq, 400),
        response: { status: 400, reason: UNSUPPORTED_STREAM_REASON, cseq },
        refusal: { reason: "stream_limits", detail: error.message },
      };
    }
    const { context } = this;
    if (!context.codecSupport[parameters.video.codec]) return this.#reply(cseq, 400);
    if (!context.audioChannelCounts.includes(parameters.audio.channelCount)) return this.#reply(cseq, 400);
    const mediaEncryption = SS_ENC_VIDEO | SS_ENC_AUDIO;
    if (
      context.videoEncryption === "mandatory" &&
      (parameters.encryptionFlags & mediaEncryption) !== mediaEncryption
    ) {
      return this.#reply(cseq, 403);
    }
    if (context.videoEncryption === "never" && (parameters.encryptionFlags & SS_ENC_VIDEO) !== 0) {
      return this.#reply(cseq, 400);
    }

    const host = request.headers.get("Host") ?? "";
    this.#negotiated = {
      parameters,
      audioHighQuality: parameters.audio.channelCount === 2
        ? !host.includes("0.0.0.0")
        : parameters.audio.highQualitySurround,
      ports: { video: context.ports.video, control: context.ports.control, audio: context.ports.audio },
      pingPayload: context.pingPayload.toUpperCase(),
      connectData: context.connectData,
    };
    this.#state = "announced";
    return this.#reply(cseq, 200);
  }

  #play(cseq: number): RtspSessionResult {
    // Older clients send one PLAY per stream; the second one is acknowledged without a second start.
    if (this.#state === "playing") return this.#reply(cseq, 200);
    if (this.#state !== "announced" || this.#negotiated === null) return this.#reply(cseq, 455);
    this.#state = "playing";
    return { ...this.#reply(cseq, 200), actions: [{ type: "start_streams", streams: this.#negotiated }] };
  }

  #teardown(cseq: number): RtspSessionResult {
    const wasPlaying = this.#state === "playing";
    this.#state = "torn_down";
    return { ...this.#reply(cseq, 200), actions: wasPlaying ? [{ type: "stop_streams" }] : [] };
  }

  #reply(
    cseq: number | null,
    status: number,
    headers: ReadonlyArray<readonly [string, string]> = [],
    body?: string,
  ): RtspSessionResult {
    return { response: { status, reason: REASONS[status], cseq, headers, body }, actions: [], refusal: null };
  }
}
