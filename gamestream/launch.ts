/**
 * `/launch` and `/resume` (docs/gamestream-protocol.md §4): strict parsing of the query into a
 * `LaunchRequest`, the session key material derived from `rikey`/`rikeyid`, and the reply documents. Starting
 * apps and raising the RTSP session belong to the caller.
 */
import { parseQuery, QueryError, type QueryParams, renderError, renderOk, xmlEscape } from "./nvhttp_xml.ts";
import { MAX_APP_ID } from "./apps.ts";

export type LaunchKind = "launch" | "resume";

export interface RequestedDisplayMode {
  /** 0×0 means "not given" (Sunshine's default `0x0x0`). */
  readonly width: number;
  readonly height: number;
  /** 0 is legal: MQT sends it to GFE above 60 fps. */
  readonly fps: number;
}

export type SurroundChannelCount = 2 | 6 | 8;

export interface SurroundAudioInfo {
  readonly channelCount: SurroundChannelCount;
  /** Speaker mask (bit 0 = front left …); has exactly `channelCount` bits set. */
  readonly channelMask: number;
}

export interface LaunchRequest {
  readonly kind: LaunchKind;
  readonly uniqueId: string | null;
  /** Required for /launch; 0 = open a session without starting an app. */
  readonly appId: number | null;
  readonly mode: RequestedDisplayMode;
  readonly sops: boolean;
  readonly hdrMode: boolean;
  /** AES-128 key for every encrypted stream (16 bytes). */
  readonly rikey: Uint8Array;
  /** Signed 32-bit; its big-endian bytes start the client's `remoteInputAesIv`. */
  readonly rikeyId: number;
  /** Required for /launch, optional for /resume (null when absent). */
  readonly localAudioPlayMode: boolean | null;
  readonly surroundAudio: SurroundAudioInfo;
  readonly remoteControllersBitmap: number;
  readonly gcmap: number;
  readonly gcpersist: boolean;
  /** ≥1 ⇒ the client speaks encrypted RTSP (`rtspenc://`). */
  readonly corever: number;
  /** Sunshine extension: custom Opus layout `<ch><streams><coupled><mapping…>`. */
  readonly surroundParams: string | null;
  /** Sunshine extension: keep sending audio during silence. */
  readonly continuousAudio: boolean;
}

export type LaunchParamErrorCode = "malformed_query" | "missing_parameter" | "invalid_parameter";

export class LaunchParamError extends Error {
  override readonly name = "LaunchParamError";
  constructor(readonly code: LaunchParamErrorCode, readonly parameter: string | null, detail: string) {
    super(parameter === null ? `${code}: ${detail}` : `${code} (${parameter}): ${detail}`);
  }
}

/** Stereo, `(0x3 << 16) | 2`: Sunshine's default when `surroundAudioInfo` is absent. */
export const DEFAULT_SURROUND_AUDIO_INFO = 196610;
/** Larger than any encoder's limit (8K = 7680) with room to spare. */
export const MAX_MODE_DIMENSION = 16384;
export const MAX_MODE_FPS = 1000;
/** Sunshine-mode clients drive up to 16 gamepads, one bit each. */
export const MAX_CONTROLLER_BITMAP = 0xffff;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const UINT32_MAX = 0xffff_ffff;

/** Parses the query of a `/launch` or `/resume` request target. Throws only `LaunchParamError`. */
export function parseLaunchQuery(target: string, kind: LaunchKind): LaunchRequest {
  let params: QueryParams;
  try {
    params = parseQuery(target);
  } catch (error) {
    if (error instanceof QueryError) {
      throw new LaunchParamError("malformed_query", error.parameter, error.message);
    }
    throw error;
  }
  return parseLaunchParams(params, kind);
}

/** Builds a `LaunchRequest` from parsed query parameters. Unknown parameters are ignored. */
export function parseLaunchParams(params: QueryParams, kind: LaunchKind): LaunchRequest {
  const read = (name: string) => params.get(name) ?? null;
  const required = (name: string) => {
    const value = read(name);
    if (value === null) throw new LaunchParamError("missing_parameter", name, "required parameter is absent");
    return value;
  };

  const appIdText = kind === "launch" ? required("appid") : read("appid");
  const localAudioText = kind === "launch" ? required("localAudioPlayMode") : read("localAudioPlayMode");
  const additionalStates = read("additionalStates");
  if (additionalStates !== null) parseUnsigned("additionalStates", additionalStates, UINT32_MAX);

  return {
    kind,
    uniqueId: read("uniqueid"),
    appId: appIdText === null ? null : parseUnsigned("appid", appIdText, MAX_APP_ID),
    mode: parseMode(read("mode")),
    sops: parseFlag("sops", read("sops")),
    hdrMode: parseFlag("hdrMode", read("hdrMode")),
    rikey: parseRikey(required("rikey")),
    rikeyId: parseSigned32("rikeyid", required("rikeyid")),
    localAudioPlayMode: localAudioText === null ? null : parseFlag("localAudioPlayMode", localAudioText),
    surroundAudio: parseSurroundAudioInfo(read("surroundAudioInfo")),
    remoteControllersBitmap: parseOptionalUnsigned(
      "remoteControllersBitmap",
      read("remoteControllersBitmap"),
    ),
    gcmap: parseOptionalUnsigned("gcmap", read("gcmap")),
    gcpersist: parseFlag("gcpersist", read("gcpersist")),
    corever: read("corever") === null ? 0 : parseUnsigned("corever", read("corever")!, INT32_MAX),
    surroundParams: parseSurroundParams(read("surroundParams")),
    continuousAudio: parseFlag("continuousAudio", read("continuousAudio")),
  };
}

function invalid(parameter: string, detail: string): LaunchParamError {
  return new LaunchParamError("invalid_parameter", parameter, detail);
}

/** Decimal digits only (10 digits cover 2^32−1), like Sunshine's decimal-only parsing. */
function parseUnsigned(parameter: string, text: string, max: number): number {
  if (!/^\d{1,10}$/.test(text)) throw invalid(parameter, `"${text}" is not a decimal number`);
  const value = Number(text);
  if (value > max) throw invalid(parameter, `${value} exceeds ${max}`);
  return value;
}

function parseSigned32(parameter: string, text: string): number {
  if (!/^-?\d{1,10}$/.test(text)) throw invalid(parameter, `"${text}" is not a decimal number`);
  const value = Number(text);
  if (value < INT32_MIN || value > INT32_MAX) {
    throw invalid(parameter, `${value} is not a signed 32-bit integer`);
  }
  return value;
}

function parseOptionalUnsigned(parameter: string, text: string | null): number {
  return text === null ? 0 : parseUnsigned(parameter, text, MAX_CONTROLLER_BITMAP);
}

function parseFlag(parameter: string, text: string | null): boolean {
  if (text === null || text === "0") return false;
  if (text === "1") return true;
  throw invalid(parameter, `"${text}" is not 0 or 1`);
}

function parseMode(text: string | null): RequestedDisplayMode {
  if (text === null) return { width: 0, height: 0, fps: 0 };
  const match = /^(\d{1,5})x(\d{1,5})x(\d{1,5})$/.exec(text);
  if (!match) throw invalid("mode", `"${text}" is not WIDTHxHEIGHTxFPS`);
  const [width, height, fps] = match.slice(1).map(Number);
  if (width > MAX_MODE_DIMENSION || height > MAX_MODE_DIMENSION) {
    throw invalid("mode", `${width}x${height} exceeds ${MAX_MODE_DIMENSION} pixels per side`);
  }
  if ((width === 0) !== (height === 0)) {
    throw invalid("mode", "width and height must both be 0 or both positive");
  }
  if (fps > MAX_MODE_FPS) throw invalid("mode", `${fps} fps exceeds ${MAX_MODE_FPS}`);
  return { width, height, fps };
}

function parseRikey(text: string): Uint8Array {
  if (!/^[0-9A-Fa-f]{32}$/.test(text)) throw invalid("rikey", "expected 32 hex digits (16 bytes)");
  const key = new Uint8Array(16);
  for (let i = 0; i < 16; i++) key[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return key;
}

function popcount(value: number): number {
  let count = 0;
  for (let bits = value; bits !== 0; bits >>>= 1) count += bits & 1;
  return count;
}

/** `(channelMask << 16) | channelCount`, MLC's `SURROUNDAUDIOINFO_FROM_AUDIO_CONFIGURATION`. */
function parseSurroundAudioInfo(text: string | null): SurroundAudioInfo {
  const value = parseUnsigned("surroundAudioInfo", text ?? String(DEFAULT_SURROUND_AUDIO_INFO), UINT32_MAX);
  const channelCount = value & 0xffff;
  const channelMask = value >>> 16;
  if (channelCount !== 2 && channelCount !== 6 && channelCount !== 8) {
    throw invalid("surroundAudioInfo", `${channelCount} channels; supported are 2, 6 and 8`);
  }
  if (popcount(channelMask) !== channelCount) {
    throw invalid(
      "surroundAudioInfo",
      `mask 0x${channelMask.toString(16)} does not name ${channelCount} speakers`,
    );
  }
  return { channelCount, channelMask };
}

/** `<ch><streams><coupled><mapping: ch digits>`; each mapping entry is an Opus channel < streams+coupled. */
function parseSurroundParams(text: string | null): string | null {
  if (text === null) return null;
  if (!/^\d{4,11}$/.test(text)) throw invalid("surroundParams", "expected 4 to 11 decimal digits");
  const [channels, streams, coupled, ...mapping] = [...text].map(Number);
  if (channels !== 2 && channels !== 6 && channels !== 8) {
    throw invalid("surroundParams", "channel count not 2/6/8");
  }
  if (mapping.length !== channels) throw invalid("surroundParams", `expected ${channels} mapping digits`);
  if (streams < 1 || coupled > streams) {
    throw invalid("surroundParams", "need 1+ streams and coupled ≤ streams");
  }
  if (mapping.some((entry) => entry >= streams + coupled)) {
    throw invalid("surroundParams", "mapping refers to a channel beyond the Opus streams");
  }
  return text;
}

// -----------------------------------------------------------------------------------------------------------
// Key material (§4.2, §8.3)

export interface SessionKeyMaterial {
  /** `rikey`: AES-128 key for RTSP, control, input, video and audio encryption. */
  readonly key: Uint8Array;
  /** `BE32(rikeyid) ‖ 00×12`, equal to the client's `remoteInputAesIv`. */
  readonly iv: Uint8Array;
  /** `rikeyid` as sent (signed). */
  readonly riKeyId: number;
  /** BE32 of the first 4 IV bytes, unsigned: the same 32 bits as `riKeyId`. Audio IVs add the RTP seq. */
  readonly avRiKeyId: number;
}

export function deriveSessionKeys(rikey: Uint8Array, rikeyId: number): SessionKeyMaterial {
  if (rikey.length !== 16) throw new RangeError(`rikey must be 16 bytes, got ${rikey.length}`);
  if (!Number.isInteger(rikeyId) || rikeyId < INT32_MIN || rikeyId > UINT32_MAX) {
    throw new RangeError(`rikeyid ${rikeyId} does not fit 32 bits`);
  }
  const iv = new Uint8Array(16);
  const view = new DataView(iv.buffer);
  view.setUint32(0, rikeyId >>> 0, false);
  return { key: rikey.slice(), iv, riKeyId: rikeyId | 0, avRiKeyId: view.getUint32(0, false) };
}

export function sessionKeysFor(request: LaunchRequest): SessionKeyMaterial {
  return deriveSessionKeys(request.rikey, request.rikeyId);
}

/** Audio AES-CBC IV of one packet: `BE32(avRiKeyId + seq) ‖ 00×12`, 32-bit wrap-around (§8.3). */
export function audioPacketIv(keys: SessionKeyMaterial, rtpSequenceNumber: number): Uint8Array {
  if (!Number.isInteger(rtpSequenceNumber) || rtpSequenceNumber < 0 || rtpSequenceNumber > 0xffff) {
    throw new RangeError(`RTP sequence number ${rtpSequenceNumber} is not 16-bit`);
  }
  const iv = new Uint8Array(16);
  new DataView(iv.buffer).setUint32(0, (keys.avRiKeyId + rtpSequenceNumber) >>> 0, false);
  return iv;
}

// -----------------------------------------------------------------------------------------------------------
// Replies (§4.3)

export const DEFAULT_RTSP_PORT = 48010;

export function wantsEncryptedRtsp(request: LaunchRequest): boolean {
  return request.corever >= 1;
}

/** URL host: v4-mapped IPv6 unwrapped, other IPv6 bracketed (zone dropped; MLC only reads the port). */
export function urlHost(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) return mapped[1];
  if (!address.includes(":")) return address;
  const zone = address.indexOf("%");
  return `[${zone < 0 ? address : address.slice(0, zone)}]`;
}

/** `rtsp[enc]://<local address of the HTTPS connection>:<rtsp port>`. */
export function rtspSessionUrl(localAddress: string, rtspPort: number, encrypted: boolean): string {
  if (!Number.isInteger(rtspPort) || rtspPort < 1 || rtspPort > 65535) {
    throw new RangeError(`RTSP port ${rtspPort} is not in 1..65535`);
  }
  return `${encrypted ? "rtspenc" : "rtsp"}://${urlHost(localAddress)}:${rtspPort}`;
}

export function renderLaunchResponse(kind: LaunchKind, sessionUrl: string): string {
  const marker = kind === "launch" ? "<gamesession>1</gamesession>" : "<resume>1</resume>";
  return renderOk(`<sessionUrl0>${xmlEscape(sessionUrl)}</sessionUrl0>${marker}`);
}

/** A failed /launch also says `<gamesession>0</gamesession>`, as Sunshine's 503 does. */
export function renderLaunchFailure(kind: LaunchKind, statusCode: number, message: string): string {
  return renderError(statusCode, message, { body: kind === "launch" ? "<gamesession>0</gamesession>" : "" });
}

export const MISSING_LAUNCH_PARAMETER_MESSAGE = "Missing a required launch parameter";

/** The 400 reply for a rejected query; the message names the parameter. */
export function renderLaunchParamError(kind: LaunchKind, error: LaunchParamError): string {
  const message = error.code === "missing_parameter"
    ? `${MISSING_LAUNCH_PARAMETER_MESSAGE}: ${error.parameter}`
    : `Invalid launch parameter${error.parameter === null ? "" : ` ${error.parameter}`}`;
  return renderLaunchFailure(kind, 400, message);
}
