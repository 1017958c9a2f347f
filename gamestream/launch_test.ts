// Section numbers (§) refer to docs/gamestream-protocol.md.
import fc from "fast-check";
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  audioPacketIv,
  deriveSessionKeys,
  type LaunchKind,
  LaunchParamError,
  parseLaunchQuery,
  renderLaunchFailure,
  renderLaunchParamError,
  renderLaunchResponse,
  rtspSessionUrl,
  sessionKeysFor,
  urlHost,
  wantsEncryptedRtsp,
} from "./launch.ts";
import { XML_PROLOG } from "./nvhttp_xml.ts";

const RIKEY_HEX = "00112233445566778899AABBCCDDEEFF";
/** 0xCAFEBABE read as a signed 32-bit integer: 3405691582 − 2^32. */
const RIKEYID = -889275714;

/**
 * What MQT + MLC send for a 1080p60 HDR launch of app 1 (docs/gamestream-protocol.md §4.1), in their order.
 */
const MOONLIGHT_LAUNCH_QUERY = "/launch?uniqueid=0123456789ABCDEF&uuid=3f8b2a6c1e5d4f7a9b0c2d4e6f8a0b1c" +
  "&appid=1&mode=1920x1080x60&additionalStates=1&sops=0" +
  `&rikey=${RIKEY_HEX}&rikeyid=${RIKEYID}` +
  "&hdrMode=1&clientHdrCapVersion=0&clientHdrCapSupportedFlagsInUint32=0" +
  "&clientHdrCapMetaDataId=NV_STATIC_METADATA_TYPE_1&clientHdrCapDisplayData=0x0x0x0x0x0x0x0x0x0x0" +
  "&localAudioPlayMode=0&surroundAudioInfo=196610&remoteControllersBitmap=1&gcmap=1&gcpersist=0&corever=1";

function paramError(target: string, kind: LaunchKind = "launch"): LaunchParamError {
  const error = assertThrows(() => parseLaunchQuery(target, kind));
  assert(error instanceof LaunchParamError, `${target}: ${error}`);
  return error;
}

function withParam(name: string, value: string | null): string {
  const url = new URL(MOONLIGHT_LAUNCH_QUERY, "https://host");
  if (value === null) url.searchParams.delete(name);
  else url.searchParams.set(name, value);
  return url.pathname + url.search;
}

Deno.test("a realistic Moonlight /launch query parses into a LaunchRequest", () => {
  const request = parseLaunchQuery(MOONLIGHT_LAUNCH_QUERY, "launch");
  assertEquals(request, {
    kind: "launch",
    uniqueId: "0123456789ABCDEF",
    appId: 1,
    mode: { width: 1920, height: 1080, fps: 60 },
    sops: false,
    hdrMode: true,
    rikey: new Uint8Array([
      0x00,
      0x11,
      0x22,
      0x33,
      0x44,
      0x55,
      0x66,
      0x77,
      0x88,
      0x99,
      0xaa,
      0xbb,
      0xcc,
      0xdd,
      0xee,
      0xff,
    ]),
    rikeyId: RIKEYID,
    localAudioPlayMode: false,
    surroundAudio: { channelCount: 2, channelMask: 0x3 },
    remoteControllersBitmap: 1,
    gcmap: 1,
    gcpersist: false,
    corever: 1,
    surroundParams: null,
    continuousAudio: false,
  });
  assert(wantsEncryptedRtsp(request));
});

Deno.test("defaults when optional parameters are absent; /resume needs only rikey and rikeyid", () => {
  const request = parseLaunchQuery(`/resume?rikey=${RIKEY_HEX.toLowerCase()}&rikeyid=0`, "resume");
  assertEquals(request.appId, null);
  assertEquals(request.localAudioPlayMode, null);
  assertEquals(request.mode, { width: 0, height: 0, fps: 0 });
  assertEquals(request.surroundAudio, { channelCount: 2, channelMask: 3 });
  assertEquals(request.corever, 0);
  assertEquals(request.gcmap, 0);
  assert(!wantsEncryptedRtsp(request));
  assertEquals(request.rikey[15], 0xff);
});

Deno.test("surround layouts 5.1 and 7.1 and Sunshine's surroundParams extension", () => {
  const surround51 = parseLaunchQuery(withParam("surroundAudioInfo", String((0x3f << 16) | 6)), "launch");
  assertEquals(surround51.surroundAudio, { channelCount: 6, channelMask: 0x3f });
  const surround71 = parseLaunchQuery(withParam("surroundAudioInfo", String((0x63f << 16) | 8)), "launch");
  assertEquals(surround71.surroundAudio, { channelCount: 8, channelMask: 0x63f });
  for (const params of ["21101", "642012453", "660012345", "85301245367", "88001234567"]) {
    assertEquals(parseLaunchQuery(withParam("surroundParams", params), "launch").surroundParams, params);
  }
});

Deno.test("missing required parameters name the parameter", () => {
  for (const name of ["appid", "rikey", "rikeyid", "localAudioPlayMode"]) {
    const error = paramError(withParam(name, null));
    assertEquals([error.code, error.parameter], ["missing_parameter", name]);
  }
  for (const name of ["rikey", "rikeyid"]) {
    assertEquals(paramError(withParam(name, null).replace("/launch", "/resume"), "resume").parameter, name);
  }
});

Deno.test("every malformed parameter gives invalid_parameter naming it", () => {
  const cases: Array<[string, string]> = [
    ["appid", "-1"],
    ["appid", "2147483648"],
    ["appid", "0x10"],
    ["appid", ""],
    ["appid", "1.0"],
    ["mode", "1920x1080"],
    ["mode", "1920x1080x60x1"],
    ["mode", "1920X1080X60"],
    ["mode", "99999x1080x60"],
    ["mode", "1920x0x60"],
    ["mode", "1920x1080x1001"],
    ["mode", "-1920x1080x60"],
    ["additionalStates", "yes"],
    ["sops", "2"],
    ["sops", "true"],
    ["hdrMode", "01"],
    ["rikey", RIKEY_HEX.slice(2)],
    ["rikey", RIKEY_HEX + "00"],
    ["rikey", "G" + RIKEY_HEX.slice(1)],
    ["rikeyid", "2147483648"],
    ["rikeyid", "-2147483649"],
    ["rikeyid", "12ab"],
    ["rikeyid", "+5"],
    ["rikeyid", "99999999999"],
    ["localAudioPlayMode", "-1"],
    ["surroundAudioInfo", "2"],
    ["surroundAudioInfo", String((0x3 << 16) | 3)],
    ["surroundAudioInfo", String((0x7 << 16) | 2)],
    ["surroundAudioInfo", "4294967296"],
    ["remoteControllersBitmap", "65536"],
    ["gcmap", "-1"],
    ["gcpersist", "x"],
    ["corever", "v1"],
    ["continuousAudio", "on"],
    ["surroundParams", "21102"],
    ["surroundParams", "6420124"],
    ["surroundParams", "30012"],
    ["surroundParams", "207"],
    ["surroundParams", "20201"],
  ];
  for (const [name, value] of cases) {
    const error = paramError(withParam(name, value));
    assertEquals([error.code, error.parameter], ["invalid_parameter", name], `${name}=${value}`);
  }
});

Deno.test("query-level problems become malformed_query LaunchParamErrors", () => {
  assertEquals(paramError(MOONLIGHT_LAUNCH_QUERY + "&appid=2").code, "malformed_query");
  assertEquals(paramError(MOONLIGHT_LAUNCH_QUERY + "&appid=2").parameter, "appid");
  assertEquals(paramError("/launch?rikey=%G0").code, "malformed_query");
});

Deno.test("key material follows §4.2: IV = BE32(rikeyid) ‖ 00×12, avRiKeyId = BE32(IV[0..4])", () => {
  const keys = sessionKeysFor(parseLaunchQuery(MOONLIGHT_LAUNCH_QUERY, "launch"));
  assertEquals(
    keys.key,
    new Uint8Array([
      0,
      0x11,
      0x22,
      0x33,
      0x44,
      0x55,
      0x66,
      0x77,
      0x88,
      0x99,
      0xaa,
      0xbb,
      0xcc,
      0xdd,
      0xee,
      0xff,
    ]),
  );
  assertEquals(keys.iv, new Uint8Array([0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  assertEquals(keys.riKeyId, RIKEYID);
  assertEquals(keys.avRiKeyId, 0xcafebabe);
  assertEquals(
    audioPacketIv(keys, 5),
    new Uint8Array([0xca, 0xfe, 0xba, 0xc3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  );
});

Deno.test("audio IVs: the doc's example and 32-bit wrap-around", () => {
  const doc = deriveSessionKeys(new Uint8Array(16), 16909060);
  assertEquals([...audioPacketIv(doc, 5).subarray(0, 4)], [0x01, 0x02, 0x03, 0x09]);
  const wrap = deriveSessionKeys(new Uint8Array(16), -1);
  assertEquals([...wrap.iv.subarray(0, 4)], [0xff, 0xff, 0xff, 0xff]);
  assertEquals([...audioPacketIv(wrap, 1)], new Array(16).fill(0));
  assertEquals([...audioPacketIv(wrap, 0xffff).subarray(0, 4)], [0x00, 0x00, 0xff, 0xfe]);
  assertThrows(() => audioPacketIv(wrap, 0x10000), /16-bit/);
  assertThrows(() => deriveSessionKeys(new Uint8Array(15), 0), /16 bytes/);
});

Deno.test("derived keys do not alias the request's rikey", () => {
  const rikey = new Uint8Array(16).fill(7);
  const keys = deriveSessionKeys(rikey, 1);
  rikey[0] = 0;
  assertEquals(keys.key[0], 7);
});

Deno.test("launch and resume replies per §4.3", () => {
  assertEquals(
    renderLaunchResponse("launch", rtspSessionUrl("192.168.1.10", 48010, true)),
    XML_PROLOG +
      '<root status_code="200"><sessionUrl0>rtspenc://192.168.1.10:48010</sessionUrl0>' +
      "<gamesession>1</gamesession></root>",
  );
  assertEquals(
    renderLaunchResponse("resume", rtspSessionUrl("::ffff:10.0.0.5", 48010, false)),
    XML_PROLOG +
      '<root status_code="200"><sessionUrl0>rtsp://10.0.0.5:48010</sessionUrl0><resume>1</resume></root>',
  );
  assertEquals(rtspSessionUrl("fe80::1%eth0", 48010, false), "rtsp://[fe80::1]:48010");
  assertEquals(urlHost("2001:db8::7"), "[2001:db8::7]");
  assertThrows(() => rtspSessionUrl("1.2.3.4", 0, false), /RTSP port/);
});

Deno.test("launch failures carry gamesession 0 and name the bad parameter", () => {
  assertEquals(
    renderLaunchFailure("launch", 503, "No running app to resume"),
    XML_PROLOG +
      '<root status_code="503" status_message="No running app to resume"><gamesession>0</gamesession></root>',
  );
  assertEquals(
    renderLaunchFailure("resume", 503, "No running app to resume"),
    XML_PROLOG + '<root status_code="503" status_message="No running app to resume"/>',
  );
  const missing = renderLaunchParamError("launch", paramError(withParam("rikey", null)));
  assert(missing.includes('status_code="400" status_message="Missing a required launch parameter: rikey"'));
  const invalid = renderLaunchParamError("resume", paramError(withParam("mode", "big"), "resume"));
  assert(invalid.includes('status_message="Invalid launch parameter mode"'));
});

Deno.test("fuzz: parseLaunchQuery returns a request or throws LaunchParamError", () => {
  const names = [
    "uniqueid",
    "appid",
    "mode",
    "additionalStates",
    "sops",
    "hdrMode",
    "rikey",
    "rikeyid",
    "localAudioPlayMode",
    "surroundAudioInfo",
    "remoteControllersBitmap",
    "gcmap",
    "gcpersist",
    "corever",
    "surroundParams",
    "continuousAudio",
  ];
  const value = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.integer().map(String),
    fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }).map(String),
    fc.constantFrom("0", "1", "1920x1080x60", RIKEY_HEX, "196610", "642012453", "%", "%FF", ""),
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) =>
      [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
    ),
  );
  let accepted = 0;
  const junk = fc.string({ unit: "binary", maxLength: 20 });
  const baseSegments = MOONLIGHT_LAUNCH_QUERY.slice("/launch?".length).split("&");
  // Start from Moonlight's real query, then drop, override and add parameters so both outcomes are exercised.
  const query = fc.record({
    drop: fc.uniqueArray(fc.constantFrom(...baseSegments), { maxLength: 2 }),
    overrides: fc.array(fc.tuple(fc.constantFrom(...names), value).map(([k, v]) => `${k}=${v}`), {
      maxLength: 3,
    }),
    extras: fc.array(junk, { maxLength: 2 }),
  }).map(({ drop, overrides, extras }) => {
    const overridden = new Set(overrides.map((segment) => segment.split("=")[0]));
    const kept = baseSegments.filter((segment) =>
      !drop.includes(segment) && !overridden.has(segment.split("=")[0])
    );
    return [...kept, ...overrides, ...extras];
  });
  fc.assert(
    fc.property(query, fc.constantFrom<LaunchKind>("launch", "resume"), (segments, kind) => {
      try {
        const request = parseLaunchQuery(`/${kind}?${segments.join("&")}`, kind);
        assertEquals(request.rikey.length, 16);
        assert(request.rikeyId >= -(2 ** 31) && request.rikeyId < 2 ** 31);
        assert(kind === "resume" || (request.appId !== null && request.localAudioPlayMode !== null));
        const keys = sessionKeysFor(request);
        assertEquals(keys.avRiKeyId | 0, request.rikeyId);
        accepted++;
      } catch (error) {
        if (!(error instanceof LaunchParamError)) throw error;
      }
    }),
    { numRuns: 3000 },
  );
  assert(accepted > 100, `only ${accepted} generated queries were valid`);
});

Deno.test("fuzz: any valid rikey/rikeyid pair round-trips into the key material", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      (key, id) => {
        const hex = [...key].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join("");
        const request = parseLaunchQuery(`/resume?rikey=${hex}&rikeyid=${id}`, "resume");
        const keys = sessionKeysFor(request);
        assertEquals(keys.key, key);
        assertEquals(new DataView(keys.iv.buffer).getInt32(0, false), id);
        assertEquals([...keys.iv.subarray(4)], new Array(12).fill(0));
      },
    ),
  );
});
