/**
 * Strict parser for the SDP body a Moonlight client sends with RTSP ANNOUNCE (docs/gamestream-protocol.md
 * §5.7).
 *
 * Only `a=<name>:<value>` lines are interpreted; every other well-formed SDP line (`v=`, `o=`, `t=`, `m=` …) and every
 * unknown attribute is skipped, because Moonlight sends many attributes a host does not need.
 */

/** `x-ss-general.encryption*` bits (§5.5). */
export const SS_ENC_CONTROL_V2 = 0x01;
export const SS_ENC_VIDEO = 0x02;
export const SS_ENC_AUDIO = 0x04;

/** `x-ml-general.featureFlags` bits (§5.7). */
export const ML_FF_FEC_STATUS = 0x01;
export const ML_FF_SESSION_ID_V1 = 0x02;

/** Longest accepted SDP line in bytes; the longest line MLC writes is well under 100 bytes. */
export const SDP_MAX_LINE_BYTES = 1024;
/** Most `a=` lines accepted; MLC sends about 40. */
export const SDP_MAX_ATTRIBUTES = 512;

export type SdpErrorCode =
  | "line_too_long"
  | "too_many_attributes"
  | "malformed_line"
  | "missing_attribute"
  | "invalid_number"
  | "out_of_range"
  | "unsupported";

/** Every rejection of an SDP body; `attribute` names the offending `a=` attribute when there is one. */
export class SdpError extends Error {
  override readonly name = "SdpError";
  constructor(
    readonly code: SdpErrorCode,
    readonly attribute: string | null,
    detail: string,
  ) {
    super(attribute === null ? `${code}: ${detail}` : `${code} (${attribute}): ${detail}`);
  }
}

export type VideoCodec = "h264" | "hevc" | "av1";
export type ColorSpace = "rec601" | "rec709" | "rec2020";
export type AudioChannelCount = 2 | 6 | 8;

export interface VideoStreamParameters {
  width: number;
  height: number;
  maxFps: number;
  /** Display refresh rate × 100; 0 when the client did not say. */
  clientRefreshRateX100: number;
  /** Bytes of video payload per datagram. */
  packetSize: number;
  maximumBitrateKbps: number;
  /** The user's bitrate setting; 0 when absent (then only `maximumBitrateKbps` applies). */
  configuredBitrateKbps: number;
  slicesPerFrame: number;
  /** 0 = any number of reference frames. */
  maxNumReferenceFrames: number;
  codec: VideoCodec;
  bitDepth: 8 | 10;
  chromaSampling: "4:2:0" | "4:4:4";
  colorSpace: ColorSpace;
  fullRange: boolean;
  minRequiredFecPackets: number;
  qosTrafficTagging: boolean;
  intraRefresh: boolean;
}

export interface AudioStreamParameters {
  channelCount: AudioChannelCount;
  channelMask: number;
  /** `x-nv-audio.surround.AudioQuality`; stereo quality is decided from the RTSP Host header instead (§5.6). */
  highQualitySurround: boolean;
  packetDurationMs: 5 | 10;
  qosTrafficTagging: boolean;
}

export interface StreamParameters {
  video: VideoStreamParameters;
  audio: AudioStreamParameters;
  /** `x-ss-general.encryptionEnabled` bits (SS_ENC_*). */
  encryptionFlags: number;
  /** `x-ml-general.featureFlags` bits (ML_FF_*). */
  moonlightFeatureFlags: number;
  /** `x-nv-general.featureFlags`. */
  nvFeatureFlags: number;
  /** `x-nv-general.useReliableUdp`; 13 means the encrypted control stream is required. */
  controlProtocolType: number;
}

const U32_MAX = 0xffff_ffff;
const VALUE_DECIMAL = /^[0-9]{1,10}$/;
const SDP_LINE = /^[a-zA-Z]=/;
const utf8 = new TextEncoder();

/** Splits the body into `a=` attributes (name → value, the last occurrence wins as in Sunshine). */
export function parseSdpAttributes(text: string): Map<string, string> {
  const attributes = new Map<string, string>();
  let attributeCount = 0;
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line.length > SDP_MAX_LINE_BYTES || utf8.encode(line).length > SDP_MAX_LINE_BYTES) {
      throw new SdpError("line_too_long", null, `a line exceeds ${SDP_MAX_LINE_BYTES} bytes`);
    }
    if (line.trim() === "") continue;
    if (!SDP_LINE.test(line)) {
      throw new SdpError("malformed_line", null, `not an SDP "<type>=<value>" line: ${JSON.stringify(line)}`);
    }
    if (line[0] !== "a") continue;
    attributeCount++;
    if (attributeCount > SDP_MAX_ATTRIBUTES) {
      throw new SdpError("too_many_attributes", null, `more than ${SDP_MAX_ATTRIBUTES} attributes`);
    }
    const colon = line.indexOf(":");
    if (colon <= 2) continue; // a property attribute (`a=recvonly`) or an empty name: nothing to interpret
    attributes.set(line.slice(2, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ""));
  }
  return attributes;
}

/** Parses and validates an ANNOUNCE body. Throws SdpError (only) on bad input. */
export function parseSdp(text: string): StreamParameters {
  const attributes = parseSdpAttributes(text);
  const read = new AttributeReader(attributes);

  const bitstreamFormat = read.optional("x-nv-vqos[0].bitStreamFormat", 0, 2, null);
  // Without bitStreamFormat (older clients), x-nv-clientSupportHevc is the only codec hint.
  const supportsHevc = read.optional("x-nv-clientSupportHevc", 0, 1, 0);
  const codec: VideoCodec = bitstreamFormat === null
    ? (supportsHevc === 1 ? "hevc" : "h264")
    : (["h264", "hevc", "av1"] as const)[bitstreamFormat];

  const cscMode = read.optional("x-nv-video[0].encoderCscMode", 0, 5, 0);
  const channelCount = read.oneOf("x-nv-audio.surround.numChannels", [2, 6, 8] as const, null);
  const channelMask = read.required("x-nv-audio.surround.channelMask", 1, 0x3_ffff);
  if (popcount(channelMask) !== channelCount) {
    throw new SdpError(
      "out_of_range",
      "x-nv-audio.surround.channelMask",
      `mask 0x${channelMask.toString(16)} does not name ${channelCount} channels`,
    );
  }

  return {
    video: {
      width: read.required("x-nv-video[0].clientViewportWd", 1, 16384),
      height: read.required("x-nv-video[0].clientViewportHt", 1, 16384),
      maxFps: read.required("x-nv-video[0].maxFPS", 1, 1000),
      clientRefreshRateX100: read.optional("x-nv-video[0].clientRefreshRateX100", 0, 100_000, 0),
      packetSize: read.required("x-nv-video[0].packetSize", 64, 65535),
      // 10 Gbit/s is far beyond any encoder; the bound only keeps later arithmetic sane.
      maximumBitrateKbps: read.required("x-nv-vqos[0].bw.maximumBitrateKbps", 1, 10_000_000),
      configuredBitrateKbps: read.optional("x-ml-video.configuredBitrateKbps", 0, 10_000_000, 0),
      // MLC sends decoder caps >> 24, i.e. one byte.
      slicesPerFrame: read.required("x-nv-video[0].videoEncoderSlicesPerFrame", 1, 255),
      // H.264 and HEVC allow at most 16 reference frames.
      maxNumReferenceFrames: read.required("x-nv-video[0].maxNumReferenceFrames", 0, 16),
      codec,
      bitDepth: read.optional("x-nv-video[0].dynamicRangeMode", 0, 1, 0) === 1 ? 10 : 8,
      chromaSampling: read.optional("x-ss-video[0].chromaSamplingType", 0, 1, 0) === 1 ? "4:4:4" : "4:2:0",
      colorSpace: (["rec601", "rec709", "rec2020"] as const)[cscMode >> 1],
      fullRange: (cscMode & 1) === 1,
      // Reed-Solomon over GF(256): a block has at most 255 shards (§7.4).
      minRequiredFecPackets: read.optional("x-nv-vqos[0].fec.minRequiredFecPackets", 0, 255, 0),
      qosTrafficTagging: read.optional("x-nv-vqos[0].qosTrafficType", 0, U32_MAX, 0) !== 0,
      intraRefresh: read.optional("x-ss-video[0].intraRefresh", 0, 1, 0) === 1,
    },
    audio: {
      channelCount,
      channelMask,
      highQualitySurround: read.required("x-nv-audio.surround.AudioQuality", 0, 1) === 1,
      packetDurationMs: read.oneOf("x-nv-aqos.packetDuration", [5, 10] as const, 5),
      qosTrafficTagging: read.optional("x-nv-aqos.qosTrafficType", 0, U32_MAX, 0) !== 0,
    },
    encryptionFlags: read.optional("x-ss-general.encryptionEnabled", 0, U32_MAX, 0),
    moonlightFeatureFlags: read.optional("x-ml-general.featureFlags", 0, U32_MAX, 0),
    nvFeatureFlags: read.optional("x-nv-general.featureFlags", 0, U32_MAX, 0),
    controlProtocolType: read.optional("x-nv-general.useReliableUdp", 0, U32_MAX, 1),
  };
}

class AttributeReader {
  constructor(private readonly attributes: Map<string, string>) {}

  required(name: string, min: number, max: number): number {
    const value = this.number(name);
    if (value === null) throw new SdpError("missing_attribute", name, "required attribute is absent");
    return checkRange(name, value, min, max);
  }

  optional<D extends number | null>(name: string, min: number, max: number, fallback: D): number | D {
    const value = this.number(name);
    return value === null ? fallback : checkRange(name, value, min, max);
  }

  oneOf<T extends number, D extends T | null>(name: string, allowed: readonly T[], fallback: D): T {
    const value = this.number(name);
    if (value === null) {
      if (fallback === null) throw new SdpError("missing_attribute", name, "required attribute is absent");
      return fallback;
    }
    if (!(allowed as readonly number[]).includes(value)) {
      throw new SdpError("out_of_range", name, `${value} is not one of ${allowed.join(", ")}`);
    }
    return value as T;
  }

  private number(name: string): number | null {
    const text = this.attributes.get(name);
    if (text === undefined) return null;
    // Decimal only, as Sunshine parses these values (§5.7).
    if (!VALUE_DECIMAL.test(text)) {
      throw new SdpError("invalid_number", name, `not a decimal number: ${JSON.stringify(text)}`);
    }
    const value = Number(text);
    if (value > U32_MAX) throw new SdpError("invalid_number", name, `${text} does not fit in 32 bits`);
    return value;
  }
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (value < min || value > max) {
    throw new SdpError("out_of_range", name, `${value} is outside ${min}..${max}`);
  }
  return value;
}

function popcount(value: number): number {
  let count = 0;
  for (let rest = value; rest !== 0; rest >>>= 1) count += rest & 1;
  return count;
}

// ---------------------------------------------------------------------------------------------------------------
// What the native core can stream. The grammar above only bounds what a sane SDP can say; these are the limits
// the native video sender (pipeline config, GameStream packetizer) accepts, checked at ANNOUNCE so a session the
// core would refuse (or that would exhaust memory) is refused with an RTSP error instead of failing after PLAY.

export const NATIVE_STREAM_LIMITS = {
  /** The pipeline config's smallest encode size per side. */
  minDimension: 64,
  /** The pipeline config's and encoder probe's largest encode size per side. */
  maxDimension: 16384,
  /**
   * Largest picture in luma samples: 8192×4352, the maximum frame size of H.264 level 6.2, HEVC level 6.2 and
   * AV1 level 6.3 alike, so no decoder of any supported codec takes more. It also bounds memory: a 4:2:0 frame
   * of this size is 53 MB, where 16384×16384 would be 400 MB per buffered frame.
   */
  maxLumaSamples: 35_651_584,
  /** The pipeline config's frame-rate range. */
  minFps: 1,
  maxFps: 480,
  /** The GameStream packetizer: a multiple of 16 (AES blocks / FEC chunks) from 32 to 65 456 (an encrypted
   * datagram, packetSize + 48 bytes, must fit one 65 507-byte UDP payload). */
  packetSizeMultiple: 16,
  minPacketSize: 32,
  maxPacketSize: 65_456,
  /** The pipeline config's bitrate ceiling (kbit/s). */
  maxBitrateKbps: 2_000_000,
  /** The pipeline config's ceiling for parity shards per FEC block. */
  maxMinRequiredFecPackets: 64,
} as const;

/** Throws SdpError("unsupported") when the parsed parameters exceed what the native core streams. */
export function checkNativeStreamLimits(parameters: StreamParameters): void {
  const limits = NATIVE_STREAM_LIMITS;
  const { video } = parameters;
  const refuse = (attribute: string, detail: string): never => {
    throw new SdpError("unsupported", attribute, detail);
  };
  for (
    const [attribute, value] of [
      ["x-nv-video[0].clientViewportWd", video.width],
      ["x-nv-video[0].clientViewportHt", video.height],
    ] as const
  ) {
    if (value < limits.minDimension || value > limits.maxDimension) {
      refuse(attribute, `${value} is outside the encoder's ${limits.minDimension}..${limits.maxDimension}`);
    }
  }
  if (video.width * video.height > limits.maxLumaSamples) {
    refuse(
      "x-nv-video[0].clientViewportWd",
      `${video.width}x${video.height} exceeds ${limits.maxLumaSamples} pixels (8192x4352)`,
    );
  }
  if (video.maxFps < limits.minFps || video.maxFps > limits.maxFps) {
    refuse("x-nv-video[0].maxFPS", `${video.maxFps} is outside ${limits.minFps}..${limits.maxFps}`);
  }
  if (
    video.packetSize < limits.minPacketSize || video.packetSize > limits.maxPacketSize ||
    video.packetSize % limits.packetSizeMultiple !== 0
  ) {
    refuse(
      "x-nv-video[0].packetSize",
      `${video.packetSize} is not a multiple of ${limits.packetSizeMultiple} in ${limits.minPacketSize}..${limits.maxPacketSize}`,
    );
  }
  if (video.maximumBitrateKbps > limits.maxBitrateKbps) {
    refuse(
      "x-nv-vqos[0].bw.maximumBitrateKbps",
      `${video.maximumBitrateKbps} exceeds ${limits.maxBitrateKbps}`,
    );
  }
  if (video.configuredBitrateKbps > limits.maxBitrateKbps) {
    refuse(
      "x-ml-video.configuredBitrateKbps",
      `${video.configuredBitrateKbps} exceeds ${limits.maxBitrateKbps}`,
    );
  }
  if (video.minRequiredFecPackets > limits.maxMinRequiredFecPackets) {
    refuse(
      "x-nv-vqos[0].fec.minRequiredFecPackets",
      `${video.minRequiredFecPackets} exceeds ${limits.maxMinRequiredFecPackets}`,
    );
  }
}
