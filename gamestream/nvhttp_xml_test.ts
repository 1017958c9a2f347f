import fc from "fast-check";
import { assert, assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import { createAppCatalogue } from "./apps.ts";
import {
  codecModeSupport,
  type CodecSupport,
  isEndpointServed,
  MAX_QUERY_BYTES,
  MAX_QUERY_PARAMS,
  mdnsInstanceName,
  parseQuery,
  QueryError,
  renderAppList,
  renderCancel,
  renderError,
  renderServerInfo,
  renderUnauthorized,
  renderUnpair,
  SCM_AV1_HIGH10_444,
  SCM_AV1_MAIN10,
  SCM_AV1_MAIN8,
  SCM_H264,
  SCM_HEVC,
  SCM_HEVC_MAIN10,
  type ServerInfo,
  type ServerInfoContext,
  ServerInfoError,
  serverInfoLocalIp,
  XML_PROLOG,
  xmlEscape,
} from "./nvhttp_xml.ts";

const ALL_MAIN_CODECS: CodecSupport = {
  h264: true,
  hevc: true,
  hevcMain10: true,
  av1: false,
  av1Main10: false,
};

const INFO: ServerInfo = {
  hostname: "mypc",
  uniqueId: "2A8F0000-1111-2222-3333-444455556666",
  httpsPort: 47984,
  externalPort: 47989,
  mac: "aa:bb:cc:dd:ee:ff",
  codecs: ALL_MAIN_CODECS,
  currentGameId: 0,
};

const PAIRED_HTTPS: ServerInfoContext = {
  https: true,
  pairedClientPresent: true,
  uniqueIdQueryPresent: true,
  localAddress: "192.168.1.10",
};

function elementText(xml: string, name: string): string | null {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return match ? match[1] : null;
}

Deno.test("serverinfo over paired HTTPS equals the doc's example byte for byte", () => {
  const expected = XML_PROLOG +
    '<root status_code="200"><hostname>mypc</hostname><appversion>7.1.431.-1</appversion>' +
    "<GfeVersion>3.23.0.74</GfeVersion><uniqueid>2A8F0000-1111-2222-3333-444455556666</uniqueid>" +
    "<HttpsPort>47984</HttpsPort><ExternalPort>47989</ExternalPort>" +
    "<MaxLumaPixelsHEVC>1869449984</MaxLumaPixelsHEVC><mac>aa:bb:cc:dd:ee:ff</mac>" +
    "<LocalIP>192.168.1.10</LocalIP>" +
    "<ServerCodecModeSupport>769</ServerCodecModeSupport>" +
    "<PairStatus>1</PairStatus><currentgame>0</currentgame><state>SUNSHINE_SERVER_FREE</state></root>";
  assertEquals(renderServerInfo(INFO, PAIRED_HTTPS), expected);
});

Deno.test("PairStatus is 1 only over HTTPS with a paired cert and uniqueid; the MAC only over HTTPS", () => {
  for (const https of [false, true]) {
    for (const pairedClientPresent of [false, true]) {
      for (const uniqueIdQueryPresent of [false, true]) {
        const xml = renderServerInfo(INFO, {
          https,
          pairedClientPresent,
          uniqueIdQueryPresent,
          localAddress: "10.0.0.2",
        });
        const label = JSON.stringify({ https, pairedClientPresent, uniqueIdQueryPresent });
        assertEquals(
          elementText(xml, "PairStatus"),
          https && pairedClientPresent && uniqueIdQueryPresent ? "1" : "0",
          label,
        );
        assertEquals(
          elementText(xml, "mac"),
          https && pairedClientPresent ? INFO.mac : "00:00:00:00:00:00",
          label,
        );
      }
    }
  }
});

Deno.test("serverinfo element order follows Sunshine and optional elements slot in before PairStatus", () => {
  const xml = renderServerInfo(
    { ...INFO, externalIp: "203.0.113.7", displayModes: [{ width: 1920, height: 1080, refreshRate: 60 }] },
    PAIRED_HTTPS,
  );
  const order = [...xml.matchAll(/<([A-Za-z]+)>/g)].map((match) => match[1]);
  assertEquals(order, [
    "hostname",
    "appversion",
    "GfeVersion",
    "uniqueid",
    "HttpsPort",
    "ExternalPort",
    "MaxLumaPixelsHEVC",
    "mac",
    "LocalIP",
    "ServerCodecModeSupport",
    "ExternalIP",
    "SupportedDisplayMode",
    "DisplayMode",
    "Width",
    "Height",
    "RefreshRate",
    "PairStatus",
    "currentgame",
    "state",
  ]);
  assertMatch(
    xml,
    /<DisplayMode><Width>1920<\/Width><Height>1080<\/Height><RefreshRate>60<\/RefreshRate><\/DisplayMode>/,
  );
});

Deno.test("a running app makes the host busy and is reported in currentgame", () => {
  const xml = renderServerInfo({ ...INFO, currentGameId: 1 }, PAIRED_HTTPS);
  assertEquals(elementText(xml, "currentgame"), "1");
  assertEquals(elementText(xml, "state"), "SUNSHINE_SERVER_BUSY");
  assertThrows(() => renderServerInfo({ ...INFO, currentGameId: -1 }, PAIRED_HTTPS), /invalid_field/);
  assertThrows(() => renderServerInfo({ ...INFO, httpsPort: 0 }, PAIRED_HTTPS), /invalid_field/);
});

Deno.test("LocalIP unwraps v4-mapped addresses and hides native IPv6 as 127.0.0.1", () => {
  assertEquals(serverInfoLocalIp("192.168.1.10"), "192.168.1.10");
  assertEquals(serverInfoLocalIp("::ffff:192.168.1.10"), "192.168.1.10");
  assertEquals(serverInfoLocalIp("::FFFF:10.0.0.1"), "10.0.0.1");
  assertEquals(serverInfoLocalIp("fe80::1"), "127.0.0.1");
  assertEquals(serverInfoLocalIp("::1"), "127.0.0.1");
});

Deno.test("ServerCodecModeSupport bits for every combination of the five main-profile flags", () => {
  const names = ["h264", "hevc", "hevcMain10", "av1", "av1Main10"] as const;
  for (let combo = 0; combo < 32; combo++) {
    const codecs = Object.fromEntries(
      names.map((name, bit) => [name, (combo >> bit & 1) === 1]),
    ) as unknown as CodecSupport;
    const inconsistent = (codecs.hevcMain10 && !codecs.hevc) || (codecs.av1Main10 && !codecs.av1);
    if (combo === 0) {
      assertThrows(() => codecModeSupport(codecs), /no_codec/);
    } else if (inconsistent) {
      const error = assertThrows(() => codecModeSupport(codecs), /inconsistent_codecs/);
      assert(error instanceof ServerInfoError);
    } else {
      const expected = (codecs.h264 ? SCM_H264 : 0) | (codecs.hevc ? SCM_HEVC : 0) |
        (codecs.hevcMain10 ? SCM_HEVC_MAIN10 : 0) | (codecs.av1 ? SCM_AV1_MAIN8 : 0) |
        (codecs.av1Main10 ? SCM_AV1_MAIN10 : 0);
      assertEquals(codecModeSupport(codecs), expected, JSON.stringify(codecs));
      const xml = renderServerInfo({ ...INFO, codecs }, PAIRED_HTTPS);
      assertEquals(elementText(xml, "ServerCodecModeSupport"), String(expected));
      assertEquals(elementText(xml, "MaxLumaPixelsHEVC"), codecs.hevc ? "1869449984" : "0");
    }
  }
});

Deno.test("known codec masks: H.264 only = 1, H.264+HEVC+Main10 = 769, everything = 0x7F0301", () => {
  assertEquals(
    codecModeSupport({ h264: true, hevc: false, hevcMain10: false, av1: false, av1Main10: false }),
    1,
  );
  assertEquals(codecModeSupport(ALL_MAIN_CODECS), 769);
  const everything: CodecSupport = {
    h264: true,
    hevc: true,
    hevcMain10: true,
    av1: true,
    av1Main10: true,
    h264High444: true,
    hevcRext8_444: true,
    hevcRext10_444: true,
    av1High8_444: true,
    av1High10_444: true,
  };
  assertEquals(codecModeSupport(everything), 0x007f_0301);
  assertThrows(
    () => codecModeSupport({ ...everything, av1Main10: false, av1High10_444: true }),
    /av1High10_444 is offered without av1Main10/,
  );
  assertEquals(
    codecModeSupport({ ...everything, h264High444: false }) & SCM_AV1_HIGH10_444,
    SCM_AV1_HIGH10_444,
  );
});

Deno.test("hostile hostnames and titles are escaped, and XML-illegal code points are replaced", () => {
  assertEquals(xmlEscape(`<a href="x">&'</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
  assertEquals(xmlEscape("a\x00b\x1bc\td\n"), "a\ufffdb\ufffdc\td\n");
  assertEquals(xmlEscape("\ud800x\udc00"), "\ufffdx\ufffd");
  assertEquals(xmlEscape("ok \u{1f3ae}"), "ok \u{1f3ae}");

  const hostile = `</hostname><PairStatus>1</PairStatus><!--`;
  const xml = renderServerInfo({ ...INFO, hostname: hostile }, { ...PAIRED_HTTPS, https: false });
  assertEquals(xml.match(/<PairStatus>/g)?.length, 1);
  assertEquals(elementText(xml, "PairStatus"), "0");
  assertMatch(xml, /<hostname>&lt;\/hostname&gt;&lt;PairStatus&gt;1/);

  const list = renderAppList([{ id: 7, title: `Tom & Jerry's "<Game>"`, hdrSupported: false }]);
  assertMatch(list, /<AppTitle>Tom &amp; Jerry&apos;s &quot;&lt;Game&gt;&quot;<\/AppTitle>/);
});

Deno.test("escaped text never contains markup characters or XML-illegal code points", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 200 }), (text) => {
      const escaped = xmlEscape(text);
      assert(!/[<>"']/.test(escaped));
      assert(!/&(?!(amp|lt|gt|quot|apos);)/.test(escaped));
      // deno-lint-ignore no-control-regex -- matching XML-illegal control characters is the point
      assert(!/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/.test(escaped));
      assert(escaped.isWellFormed());
    }),
  );
});

Deno.test("applist lists Desktop first with IsHdrSupported, AppTitle, ID", () => {
  const catalogue = createAppCatalogue([{ id: 42, title: "Steam", hdrSupported: true }]);
  assertEquals(
    renderAppList(catalogue.apps),
    XML_PROLOG + '<root status_code="200">' +
      "<App><IsHdrSupported>0</IsHdrSupported><AppTitle>Desktop</AppTitle><ID>1</ID></App>" +
      "<App><IsHdrSupported>1</IsHdrSupported><AppTitle>Steam</AppTitle><ID>42</ID></App></root>",
  );
  assertEquals(renderAppList([]), XML_PROLOG + '<root status_code="200"/>');
});

Deno.test("error, unauthorized, cancel and unpair documents", () => {
  assertEquals(renderError(404), XML_PROLOG + '<root status_code="404"/>');
  assertEquals(
    renderError(400, `bad "x" & <y>`),
    XML_PROLOG + '<root status_code="400" status_message="bad &quot;x&quot; &amp; &lt;y&gt;"/>',
  );
  assertEquals(
    renderUnauthorized("/applist"),
    XML_PROLOG +
      '<root status_code="401" query="/applist" ' +
      'status_message="The client is not authorized. Certificate verification failed."/>',
  );
  assertEquals(renderCancel(), XML_PROLOG + '<root status_code="200"><cancel>1</cancel></root>');
  assertEquals(renderUnpair(), XML_PROLOG + '<root status_code="200"/>');
  assert(assertThrows(() => renderError(20)) instanceof RangeError);
});

Deno.test("endpoints: HTTP serves only serverinfo, pair and unpair", () => {
  for (const path of ["/serverinfo", "/pair", "/unpair"]) {
    assert(isEndpointServed(path, false), path);
    assert(isEndpointServed(path, true), path);
  }
  for (const path of ["/applist", "/appasset", "/launch", "/resume", "/cancel"]) {
    assert(!isEndpointServed(path, false), path);
    assert(isEndpointServed(path, true), path);
  }
  assert(!isEndpointServed("/nope", true));
  assert(!isEndpointServed("/SERVERINFO", false));
});

Deno.test("mDNS instance names follow Sunshine's sanitising", () => {
  assertEquals(mdnsInstanceName("Living Room PC"), "Living-Room-PC");
  assertEquals(mdnsInstanceName("gamer.local"), "gamer");
  assertEquals(mdnsInstanceName("ünicode"), "punktfunk");
  assertEquals(mdnsInstanceName(""), "punktfunk");
  assertEquals(mdnsInstanceName("a".repeat(100)), "a".repeat(63));
  assertEquals(mdnsInstanceName("x".repeat(62) + "é" + "yy"), "x".repeat(62));
});

Deno.test("parseQuery decodes MQT's serverinfo query and percent escapes", () => {
  const params = parseQuery(
    "/serverinfo?uniqueid=0123456789ABCDEF&uuid=8e3a0c1f2b&name=a%20b+c%C3%A9&flag#frag=1",
  );
  assertEquals([...params], [
    ["uniqueid", "0123456789ABCDEF"],
    ["uuid", "8e3a0c1f2b"],
    ["name", "a b c\u00e9"],
    ["flag", ""],
  ]);
  assertEquals(parseQuery("/serverinfo").size, 0);
  assertEquals(parseQuery("https://host:47984/applist?a=1&&b=2").get("b"), "2");
});

Deno.test("parseQuery limits and malformed input give typed errors", () => {
  const cases: Array<[string, string]> = [
    ["/x?a=1&a=2", "duplicate_param"],
    ["/x?a=%zz", "malformed"],
    ["/x?a=%C3", "malformed"],
    ["/x?=1", "malformed"],
    ["/x?a=b c", "malformed"],
    ["/x?a=\u00e9", "malformed"],
    ["/x?" + "a".repeat(MAX_QUERY_BYTES + 1), "too_long"],
    ["/x?" + Array.from({ length: MAX_QUERY_PARAMS + 1 }, (_, i) => `p${i}=1`).join("&"), "too_many_params"],
  ];
  for (const [target, code] of cases) {
    const error = assertThrows(() => parseQuery(target));
    assert(error instanceof QueryError, target);
    assertEquals(error.code, code, target.slice(0, 40));
  }
  assertEquals(parseQuery("/x?" + "a".repeat(MAX_QUERY_BYTES)).size, 1);
  assertEquals(
    parseQuery("/x?" + Array.from({ length: MAX_QUERY_PARAMS }, (_, i) => `p${i}`).join("&")).size,
    64,
  );
  assertEquals((assertThrows(() => parseQuery("/x?a=1&a=2")) as QueryError).parameter, "a");
});

Deno.test("fuzz: parseQuery returns a bounded map or throws QueryError", () => {
  const segment = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.string({ unit: "binary", maxLength: 30 }),
    fc.tuple(fc.constantFrom("appid", "rikey", "a", "%41"), fc.string({ maxLength: 8 })).map(([k, v]) =>
      `${k}=${v}`
    ),
    fc.constantFrom("%", "%4", "%FF", "%e2%82%ac", "+", "=", "&", "#", "?"),
  );
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 80 }), fc.constantFrom("&", "", "="), (segments, joiner) => {
      const target = "/launch?" + segments.join(joiner);
      try {
        const params = parseQuery(target);
        assert(params.size <= MAX_QUERY_PARAMS);
        for (const key of params.keys()) assert(key.length > 0);
      } catch (error) {
        if (!(error instanceof QueryError)) throw error;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("fuzz: round trip of encodeURIComponent-encoded parameters", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ maxLength: 20 })), {
        maxLength: 20,
        selector: ([key]) => key,
      }),
      (pairs) => {
        const wellFormed = pairs.filter(([k, v]) => k.isWellFormed() && v.isWellFormed());
        const query = wellFormed.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join(
          "&",
        );
        assertEquals([...parseQuery(`/x?${query}`)], wellFormed);
      },
    ),
  );
});
