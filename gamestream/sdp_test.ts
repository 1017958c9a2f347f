// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  checkNativeStreamLimits,
  NATIVE_STREAM_LIMITS,
  parseSdp,
  parseSdpAttributes,
  SDP_MAX_ATTRIBUTES,
  SDP_MAX_LINE_BYTES,
  SdpError,
  type StreamParameters,
} from "./sdp.ts";

/**
 * The 1080p60 H.264 stereo example body of docs/gamestream-protocol.md §5.7, attributes in MLC's send order.
 */
const EXAMPLE_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ["x-ml-general.featureFlags", "3"],
  ["x-ss-general.encryptionEnabled", "5"],
  ["x-ss-video[0].chromaSamplingType", "0"],
  ["x-nv-video[0].clientViewportWd", "1920"],
  ["x-nv-video[0].clientViewportHt", "1080"],
  ["x-nv-video[0].maxFPS", "60"],
  ["x-nv-video[0].packetSize", "1392"],
  ["x-nv-video[0].rateControlMode", "4"],
  ["x-nv-video[0].timeoutLengthMs", "7000"],
  ["x-nv-video[0].framesWithInvalidRefThreshold", "0"],
  ["x-nv-video[0].initialBitrateKbps", "16000"],
  ["x-nv-video[0].initialPeakBitrateKbps", "16000"],
  ["x-nv-vqos[0].bw.minimumBitrateKbps", "16000"],
  ["x-nv-vqos[0].bw.maximumBitrateKbps", "16000"],
  ["x-ml-video.configuredBitrateKbps", "20000"],
  ["x-nv-vqos[0].fec.enable", "1"],
  ["x-nv-vqos[0].videoQualityScoreUpdateTime", "5000"],
  ["x-nv-vqos[0].qosTrafficType", "5"],
  ["x-nv-aqos.qosTrafficType", "4"],
  ["x-nv-general.featureFlags", "167"],
  ["x-nv-general.useReliableUdp", "13"],
  ["x-nv-vqos[0].fec.minRequiredFecPackets", "2"],
  ["x-nv-vqos[0].bllFec.enable", "0"],
  ["x-nv-vqos[0].drc.enable", "0"],
  ["x-nv-general.enableRecoveryMode", "0"],
  ["x-nv-video[0].videoEncoderSlicesPerFrame", "1"],
  ["x-nv-clientSupportHevc", "0"],
  ["x-nv-vqos[0].bitStreamFormat", "0"],
  ["x-nv-video[0].dynamicRangeMode", "0"],
  ["x-nv-video[0].maxNumReferenceFrames", "1"],
  ["x-nv-video[0].clientRefreshRateX100", "6000"],
  ["x-nv-audio.surround.numChannels", "2"],
  ["x-nv-audio.surround.channelMask", "3"],
  ["x-nv-audio.surround.enable", "0"],
  ["x-nv-audio.surround.AudioQuality", "0"],
  ["x-nv-aqos.packetDuration", "5"],
  ["x-nv-video[0].encoderCscMode", "2"],
];

/** Builds an ANNOUNCE body exactly as MLC lays it out: CRLF lines, one space before CRLF on every `a=` line. */
function buildAnnounceSdp(
  overrides: Record<string, string | null> = {},
  attributes: ReadonlyArray<readonly [string, string]> = EXAMPLE_ATTRIBUTES,
): string {
  const lines = ["v=0", "o=android 0 14 IN IPv4 192.168.1.10", "s=NVIDIA Streaming Client"];
  for (const [name, value] of attributes) {
    const replaced = name in overrides ? overrides[name] : value;
    if (replaced !== null) lines.push(`a=${name}:${replaced} `);
  }
  for (const [name, value] of Object.entries(overrides)) {
    if (value !== null && !attributes.some(([known]) => known === name)) lines.push(`a=${name}:${value} `);
  }
  lines.push("t=0 0", "m=video 47998  ");
  return lines.map((line) => `${line}\r\n`).join("");
}

const EXAMPLE_PARAMETERS: StreamParameters = {
  video: {
    width: 1920,
    height: 1080,
    maxFps: 60,
    clientRefreshRateX100: 6000,
    packetSize: 1392,
    maximumBitrateKbps: 16000,
    configuredBitrateKbps: 20000,
    slicesPerFrame: 1,
    maxNumReferenceFrames: 1,
    codec: "h264",
    bitDepth: 8,
    chromaSampling: "4:2:0",
    colorSpace: "rec709",
    fullRange: false,
    minRequiredFecPackets: 2,
    qosTrafficTagging: true,
    intraRefresh: false,
  },
  audio: {
    channelCount: 2,
    channelMask: 3,
    highQualitySurround: false,
    packetDurationMs: 5,
    qosTrafficTagging: true,
  },
  encryptionFlags: 5,
  moonlightFeatureFlags: 3,
  nvFeatureFlags: 167,
  controlProtocolType: 13,
};

function sdpError(fn: () => unknown): SdpError {
  const error = assertThrows(fn);
  assert(error instanceof SdpError, `expected SdpError, got ${error}`);
  return error;
}

Deno.test("parseSdp: the §5.7 example body yields the expected parameters", () => {
  const body = buildAnnounceSdp();
  assertEquals(body.length, 1500); // the doc states the example is 1500 bytes
  assertEquals(parseSdp(body), EXAMPLE_PARAMETERS);
});

Deno.test("parseSdp: codec, HDR, 4:4:4, colour and 7.1 surround", () => {
  const parameters = parseSdp(buildAnnounceSdp({
    "x-nv-vqos[0].bitStreamFormat": "2",
    "x-nv-clientSupportHevc": null,
    "x-nv-video[0].dynamicRangeMode": "1",
    "x-ss-video[0].chromaSamplingType": "1",
    "x-nv-video[0].encoderCscMode": "5",
    "x-nv-audio.surround.numChannels": "8",
    "x-nv-audio.surround.channelMask": String(0x63f),
    "x-nv-audio.surround.AudioQuality": "1",
    "x-nv-aqos.packetDuration": "10",
    "x-ss-video[0].intraRefresh": "1",
  }));
  assertEquals(parameters.video.codec, "av1");
  assertEquals(parameters.video.bitDepth, 10);
  assertEquals(parameters.video.chromaSampling, "4:4:4");
  assertEquals(parameters.video.colorSpace, "rec2020");
  assertEquals(parameters.video.fullRange, true);
  assertEquals(parameters.video.intraRefresh, true);
  assertEquals(parameters.audio, {
    channelCount: 8,
    channelMask: 0x63f,
    highQualitySurround: true,
    packetDurationMs: 10,
    qosTrafficTagging: true,
  });
});

Deno.test("parseSdp: without bitStreamFormat, x-nv-clientSupportHevc picks HEVC", () => {
  const hevc = parseSdp(
    buildAnnounceSdp({ "x-nv-vqos[0].bitStreamFormat": null, "x-nv-clientSupportHevc": "1" }),
  );
  assertEquals(hevc.video.codec, "hevc");
  const h264 = parseSdp(
    buildAnnounceSdp({ "x-nv-vqos[0].bitStreamFormat": null, "x-nv-clientSupportHevc": null }),
  );
  assertEquals(h264.video.codec, "h264");
});

Deno.test("parseSdp: optional attributes fall back to Sunshine's defaults", () => {
  const parameters = parseSdp(buildAnnounceSdp({
    "x-ml-general.featureFlags": null,
    "x-ss-general.encryptionEnabled": null,
    "x-nv-aqos.packetDuration": null,
    "x-nv-general.useReliableUdp": null,
    "x-nv-vqos[0].fec.minRequiredFecPackets": null,
    "x-nv-video[0].encoderCscMode": null,
    "x-nv-vqos[0].qosTrafficType": "0",
  }));
  assertEquals(parameters.moonlightFeatureFlags, 0);
  assertEquals(parameters.encryptionFlags, 0);
  assertEquals(parameters.audio.packetDurationMs, 5);
  assertEquals(parameters.controlProtocolType, 1);
  assertEquals(parameters.video.minRequiredFecPackets, 0);
  assertEquals(parameters.video.colorSpace, "rec601");
  assertEquals(parameters.video.qosTrafficTagging, false);
});

Deno.test("parseSdp: a missing required attribute is named", () => {
  for (
    const name of [
      "x-nv-video[0].clientViewportWd",
      "x-nv-video[0].clientViewportHt",
      "x-nv-video[0].maxFPS",
      "x-nv-video[0].packetSize",
      "x-nv-vqos[0].bw.maximumBitrateKbps",
      "x-nv-video[0].videoEncoderSlicesPerFrame",
      "x-nv-video[0].maxNumReferenceFrames",
      "x-nv-audio.surround.numChannels",
      "x-nv-audio.surround.channelMask",
      "x-nv-audio.surround.AudioQuality",
    ]
  ) {
    const error = sdpError(() => parseSdp(buildAnnounceSdp({ [name]: null })));
    assertEquals([error.code, error.attribute], ["missing_attribute", name]);
  }
});

Deno.test("parseSdp: out-of-range and malformed values are named", () => {
  const cases: Array<[string, string, string]> = [
    ["x-nv-video[0].clientViewportWd", "0", "out_of_range"],
    ["x-nv-video[0].clientViewportHt", "16385", "out_of_range"],
    ["x-nv-video[0].maxFPS", "1001", "out_of_range"],
    ["x-nv-video[0].packetSize", "63", "out_of_range"],
    ["x-nv-video[0].packetSize", "65536", "out_of_range"],
    ["x-nv-vqos[0].bitStreamFormat", "3", "out_of_range"],
    ["x-nv-audio.surround.numChannels", "4", "out_of_range"],
    ["x-nv-audio.surround.channelMask", String(0x3f), "out_of_range"], // six channels named, two announced
    ["x-nv-aqos.packetDuration", "20", "out_of_range"],
    ["x-nv-video[0].encoderCscMode", "6", "out_of_range"],
    ["x-nv-video[0].maxFPS", "0x3c", "invalid_number"],
    ["x-nv-video[0].maxFPS", "-60", "invalid_number"],
    ["x-nv-video[0].maxFPS", "", "invalid_number"],
    ["x-nv-video[0].maxFPS", "60.5", "invalid_number"],
    ["x-nv-general.featureFlags", "4294967296", "invalid_number"],
    ["x-nv-general.featureFlags", "99999999999", "invalid_number"],
  ];
  for (const [name, value, code] of cases) {
    const error = sdpError(() => parseSdp(buildAnnounceSdp({ [name]: value })));
    assertEquals([error.code, error.attribute], [code, name], `${name}=${value}`);
  }
});

Deno.test("parseSdpAttributes: interprets only a=name:value lines, trims the trailing space, last wins", () => {
  const attributes = parseSdpAttributes(
    "v=0\na=recvonly\na=:orphan\na=rtpmap:98 AV1/90000 \r\na=x:1 \ra=x:2\r\nm=video 47998\r\n\r\n",
  );
  assertEquals([...attributes], [["rtpmap", "98 AV1/90000"], ["x", "2"]]);
});

Deno.test("parseSdpAttributes: limits and malformed lines", () => {
  assertEquals(parseSdpAttributes(`a=x:${"1".repeat(SDP_MAX_LINE_BYTES - 4)}`).get("x")?.length, 1020);
  assertEquals(
    sdpError(() => parseSdpAttributes(`a=x:${"1".repeat(SDP_MAX_LINE_BYTES - 3)}`)).code,
    "line_too_long",
  );
  // 1024 characters but more than 1024 UTF-8 bytes.
  assertEquals(
    sdpError(() => parseSdpAttributes(`a=x:${"é".repeat(SDP_MAX_LINE_BYTES - 4)}`)).code,
    "line_too_long",
  );
  const many = (count: number) => Array.from({ length: count }, (_, i) => `a=n${i}:${i}`).join("\r\n");
  assertEquals(parseSdpAttributes(many(SDP_MAX_ATTRIBUTES)).size, SDP_MAX_ATTRIBUTES);
  assertEquals(sdpError(() => parseSdpAttributes(many(SDP_MAX_ATTRIBUTES + 1))).code, "too_many_attributes");
  assertEquals(sdpError(() => parseSdpAttributes("v=0\r\nhello\r\n")).code, "malformed_line");
  assertEquals(sdpError(() => parseSdpAttributes("=0\r\n")).code, "malformed_line");
});

Deno.test("parseSdp fuzz: random text only ever yields parameters or an SdpError", () => {
  const line = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: "binary", maxLength: 1100 }),
    fc.tuple(fc.constantFrom(...EXAMPLE_ATTRIBUTES.map(([name]) => name)), fc.string({ maxLength: 12 }))
      .map(([name, value]) => `a=${name}:${value}`),
    fc.tuple(fc.constantFrom(...EXAMPLE_ATTRIBUTES.map(([name]) => name)), fc.nat())
      .map(([name, value]) => `a=${name}:${value} `),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 60 }), fc.constantFrom("\r\n", "\n", "\r"), (lines, eol) => {
      try {
        const parameters = parseSdp(lines.join(eol));
        assert(parameters.video.width >= 1 && parameters.video.width <= 16384);
        assert(parameters.video.packetSize >= 64 && parameters.video.packetSize <= 65535);
        assert(parameters.video.maxFps >= 1 && parameters.video.maxFps <= 1000);
      } catch (error) {
        if (!(error instanceof SdpError)) throw error;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseSdp fuzz: mutating one value of the example never escapes as an untyped error", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: EXAMPLE_ATTRIBUTES.length - 1 }),
      fc.oneof(fc.string({ maxLength: 20 }), fc.bigInt({ min: -1n, max: 1n << 40n }).map(String)),
      (index, value) => {
        const name = EXAMPLE_ATTRIBUTES[index][0];
        try {
          parseSdp(buildAnnounceSdp({ [name]: value.replace(/[\r\n]/g, "") }));
        } catch (error) {
          if (!(error instanceof SdpError)) throw error;
          // The channel mask is checked against the channel count, so a bad count may be reported on the mask.
          const blamed = name === "x-nv-audio.surround.numChannels"
            ? [name, "x-nv-audio.surround.channelMask"]
            : [name];
          assert(
            error.attribute === null || blamed.includes(error.attribute),
            `${error.message}: wrong name`,
          );
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("checkNativeStreamLimits: the example passes; what the native core refuses is named", () => {
  checkNativeStreamLimits(parseSdp(buildAnnounceSdp()));
  const refused = (overrides: Record<string, string>) => {
    const error = sdpError(() => checkNativeStreamLimits(parseSdp(buildAnnounceSdp(overrides))));
    assertEquals(error.code, "unsupported");
    return error.attribute;
  };
  const width = "x-nv-video[0].clientViewportWd";
  const height = "x-nv-video[0].clientViewportHt";
  // 16384×16384 is inside the per-side limit but 268 Mpx: far beyond any codec level, 400 MB per frame.
  assertEquals(refused({ [width]: "16384", [height]: "16384" }), width);
  assertEquals(refused({ [width]: "8192", [height]: "4354" }), width);
  checkNativeStreamLimits(parseSdp(buildAnnounceSdp({ [width]: "8192", [height]: "4352" })));
  checkNativeStreamLimits(parseSdp(buildAnnounceSdp({ [width]: "7680", [height]: "4320" })));
  assertEquals(refused({ [width]: "32" }), width);
  assertEquals(refused({ [height]: "63" }), height);
  assertEquals(refused({ "x-nv-video[0].maxFPS": "481" }), "x-nv-video[0].maxFPS");
  checkNativeStreamLimits(parseSdp(buildAnnounceSdp({ "x-nv-video[0].maxFPS": "480" })));
  assertEquals(refused({ "x-nv-video[0].packetSize": "1000" }), "x-nv-video[0].packetSize");
  assertEquals(refused({ "x-nv-video[0].packetSize": "65472" }), "x-nv-video[0].packetSize");
  checkNativeStreamLimits(parseSdp(buildAnnounceSdp({ "x-nv-video[0].packetSize": "65456" })));
  assertEquals(
    refused({ "x-nv-vqos[0].bw.maximumBitrateKbps": "2000001" }),
    "x-nv-vqos[0].bw.maximumBitrateKbps",
  );
  assertEquals(
    refused({ "x-ml-video.configuredBitrateKbps": "9000000" }),
    "x-ml-video.configuredBitrateKbps",
  );
  assertEquals(
    refused({ "x-nv-vqos[0].fec.minRequiredFecPackets": "65" }),
    "x-nv-vqos[0].fec.minRequiredFecPackets",
  );
});

Deno.test("checkNativeStreamLimits property: passes exactly when every value is inside the native core's bounds", () => {
  const limits = NATIVE_STREAM_LIMITS;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 16384 }),
      fc.integer({ min: 1, max: 16384 }),
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 64, max: 65535 }),
      fc.integer({ min: 1, max: 10_000_000 }),
      fc.integer({ min: 0, max: 255 }),
      (width, height, fps, packetSize, bitrate, fec) => {
        const parameters = parseSdp(buildAnnounceSdp({
          "x-nv-video[0].clientViewportWd": String(width),
          "x-nv-video[0].clientViewportHt": String(height),
          "x-nv-video[0].maxFPS": String(fps),
          "x-nv-video[0].packetSize": String(packetSize),
          "x-nv-vqos[0].bw.maximumBitrateKbps": String(bitrate),
          "x-ml-video.configuredBitrateKbps": String(bitrate),
          "x-nv-vqos[0].fec.minRequiredFecPackets": String(fec),
        }));
        const acceptable = width >= 64 && height >= 64 && width * height <= limits.maxLumaSamples &&
          fps <= 480 && packetSize % 16 === 0 && packetSize <= 65_456 && bitrate <= 2_000_000 && fec <= 64;
        let accepted = true;
        try {
          checkNativeStreamLimits(parameters);
        } catch (error) {
          if (!(error instanceof SdpError) || error.code !== "unsupported") throw error;
          accepted = false;
        }
        assertEquals(accepted, acceptable, JSON.stringify(parameters.video));
      },
    ),
    { numRuns: 2000 },
  );
});
