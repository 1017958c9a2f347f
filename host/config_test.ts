import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import fc from "fast-check";
import {
  DEFAULT_MGMT_BIND,
  isLoopbackHost,
  parseAllowedHost,
  parseBindAddress,
  parseFileConfig,
  resolveConfigDir,
  resolveServeConfig,
} from "./config.ts";
import type { Env, FileConfig, ServeFlags } from "./config.ts";

Deno.test("config dir: PUNKTFUNK_CONFIG_DIR > XDG_CONFIG_HOME > HOME", () => {
  assertEquals(resolveConfigDir({ PUNKTFUNK_CONFIG_DIR: "/a", XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/a");
  assertEquals(resolveConfigDir({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/x/punktfunk");
  assertEquals(resolveConfigDir({ HOME: "/h" }), "/h/.config/punktfunk");
  assertThrows(() => resolveConfigDir({}), /PUNKTFUNK_CONFIG_DIR/);
});

Deno.test("bind addresses parse, IPv6 in brackets, bad ones are rejected with the input named", () => {
  assertEquals(parseBindAddress("127.0.0.1:47990"), { host: "127.0.0.1", port: 47990 });
  assertEquals(parseBindAddress("[::1]:8080"), { host: "::1", port: 8080 });
  assertEquals(parseBindAddress("0.0.0.0:0"), { host: "0.0.0.0", port: 0 });
  for (const bad of ["127.0.0.1", ":80", "host:99999", "::1:80", "a b:1", ""]) {
    assertThrows(() => parseBindAddress(bad), /bind address|port/, bad);
  }
});

Deno.test("property: parseBindAddress either returns a valid port or throws an Error", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (text) => {
      try {
        const { host, port } = parseBindAddress(text);
        return host.length > 0 && Number.isInteger(port) && port >= 0 && port <= 65535;
      } catch (error) {
        return error instanceof Error && error.message.length > 0;
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("loopback detection", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) assert(isLoopbackHost(host), host);
  for (const host of ["0.0.0.0", "::", "192.168.1.2", "128.0.0.1", "127.0.0.1.evil"]) {
    assert(!isLoopbackHost(host), host);
  }
});

const base = { configDir: "/cfg", readTokenFile: (_path: string): string | undefined => undefined };
function resolve(
  flags: ServeFlags,
  env: Env = {},
  file: FileConfig = {},
  tokenFiles: Record<string, string> = {},
) {
  return resolveServeConfig({ ...base, flags, env, file, readTokenFile: (path) => tokenFiles[path] });
}

Deno.test("precedence: flag > env > file > default", () => {
  assertEquals(resolve({}).mgmtBind, parseBindAddress(DEFAULT_MGMT_BIND));
  assertEquals(resolve({}, {}, { mgmt_bind: "127.0.0.2:1" }).mgmtBind.host, "127.0.0.2");
  assertEquals(
    resolve({}, { PUNKTFUNK_MGMT_BIND: "127.0.0.3:1" }, { mgmt_bind: "127.0.0.2:1" }).mgmtBind.host,
    "127.0.0.3",
  );
  assertEquals(
    resolve({ mgmtBind: "127.0.0.4:1" }, { PUNKTFUNK_MGMT_BIND: "127.0.0.3:1" }, { mgmt_bind: "127.0.0.2:1" })
      .mgmtBind
      .host,
    "127.0.0.4",
  );
  assertEquals(resolve({}, { PUNKTFUNK_LOG: "debug" }, { log_level: "warn" }).logLevel, "debug");
  assertEquals(resolve({ logLevel: "trace" }, { PUNKTFUNK_LOG: "debug" }).logLevel, "trace");
  assertThrows(() => resolve({ logLevel: "loud" }), /unknown log level/);
});

Deno.test("GameStream resume grace: flag > env > 300 s default; 0 allowed; junk and > 1 day refused", () => {
  assertEquals(resolve({}).gamestream.resumeGraceSeconds, 300);
  assertEquals(resolve({}, { PUNKTFUNK_GAMESTREAM_RESUME_GRACE: "0" }).gamestream.resumeGraceSeconds, 0);
  assertEquals(
    resolve({ gamestreamResumeGrace: "90" }, { PUNKTFUNK_GAMESTREAM_RESUME_GRACE: "0" }).gamestream
      .resumeGraceSeconds,
    90,
  );
  for (const bad of ["-1", "1.5", "five", "", "86401"]) {
    assertThrows(() => resolve({ gamestreamResumeGrace: bad }), /resume grace/);
  }
});

Deno.test("slow codecs: off by default; flag > env > config file; bad values are errors", () => {
  const allow = (...args: Parameters<typeof resolve>) => resolve(...args).gamestream.allowSlowCodecs;
  assertEquals(allow({}), false);
  assertEquals(allow({}, {}, { gamestream_allow_slow_codecs: true }), true);
  assertEquals(
    allow({}, { PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS: "0" }, { gamestream_allow_slow_codecs: true }),
    false,
  );
  assertEquals(
    allow({ gamestreamAllowSlowCodecs: true }, { PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS: "0" }),
    true,
  );
  assertEquals(allow({}, { PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS: "1" }), true);
  assertThrows(() => allow({}, { PUNKTFUNK_GAMESTREAM_ALLOW_SLOW_CODECS: "yes" }), /must be 0 or 1/);
  assertThrows(
    () => parseFileConfig(`{"gamestream_allow_slow_codecs":"true"}`, "/cfg/config.json"),
    /"gamestream_allow_slow_codecs" must be a boolean/,
  );
  assertThrows(
    () => parseFileConfig(`{"log_level":true}`, "/cfg/config.json"),
    /"log_level" must be a string/,
  );
});

Deno.test("token sources: flag, env, explicit file, default file; short tokens refused", () => {
  const token = "0123456789abcdef0123";
  assertEquals(resolve({ mgmtToken: token }).mgmtTokenSource, "flag");
  assertEquals(resolve({}, { PUNKTFUNK_MGMT_TOKEN: token }).mgmtTokenSource, "env");
  const fromDefault = resolve({}, {}, {}, { "/cfg/mgmt-token": `${token}\n` });
  assertEquals([fromDefault.mgmtToken, fromDefault.mgmtTokenSource], [token, "file"]);
  const fromExplicit = resolve({ mgmtTokenFile: "/run/secret" }, {}, {}, { "/run/secret": token });
  assertEquals(fromExplicit.mgmtTokenFile, "/run/secret");
  assertThrows(() => resolve({ mgmtTokenFile: "/missing" }), /does not exist/);
  assertThrows(() => resolve({ mgmtToken: "short" }), /too short/);
  assertEquals(resolve({}).mgmtToken, undefined);
});

Deno.test("config file: unknown keys, wrong types and broken JSON are errors naming the file", () => {
  assertEquals(parseFileConfig('{"mgmt_bind":"127.0.0.1:1"}', "/c.json"), { mgmt_bind: "127.0.0.1:1" });
  assertThrows(() => parseFileConfig("{", "/c.json"), /\/c\.json is not valid JSON/);
  assertThrows(() => parseFileConfig("[]", "/c.json"), /JSON object/);
  assertThrows(() => parseFileConfig('{"mgmt_bnd":"x"}', "/c.json"), /unknown key "mgmt_bnd"/);
  assertThrows(() => parseFileConfig('{"mgmt_bind":1}', "/c.json"), /must be a string/);
});

Deno.test("fuzz: parseFileConfig never throws anything but a descriptive Error", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      try {
        parseFileConfig(text, "/f.json");
        return true;
      } catch (error) {
        return error instanceof Error && error.message.includes("/f.json");
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("allowed hosts: flag > env (comma-separated) > file > none, validated and lower-cased", () => {
  const file: FileConfig = { mgmt_allowed_hosts: ["File.lan"] };
  const env = { PUNKTFUNK_MGMT_ALLOWED_HOSTS: "env.lan, 192.168.1.20,," };
  assertEquals(resolve({}).mgmtAllowedHosts, []);
  assertEquals(resolve({}, {}, file).mgmtAllowedHosts, ["file.lan"]);
  assertEquals(resolve({}, env, file).mgmtAllowedHosts, ["env.lan", "192.168.1.20"]);
  assertEquals(
    resolve({ mgmtAllowedHosts: ["a.lan", "A.lan", "fe80::1"] }, env, file).mgmtAllowedHosts,
    ["a.lan", "[fe80::1]"],
  );
  assertEquals(resolve({ mgmtAllowedHosts: [] }, env, file).mgmtAllowedHosts, ["env.lan", "192.168.1.20"]);
  assertThrows(() => resolve({ mgmtAllowedHosts: ["evil.example:80"] }), /invalid allowed host/);
  assertThrows(() => resolve({}, {}, { mgmt_allowed_hosts: ["*"] }), /invalid allowed host "\*"/);
});

Deno.test("parseAllowedHost: names and addresses pass; ports, wildcards, URLs and junk do not", () => {
  for (
    const [text, expected] of [["punktfunk.lan", "punktfunk.lan"], ["Host_1.", "host_1."], ["[::1]", "[::1]"]]
  ) {
    assertEquals(parseAllowedHost(text), expected);
  }
  for (
    const bad of [
      "",
      "*",
      "*.lan",
      "a.lan:47990",
      "http://a.lan",
      "a..lan",
      "-a.lan",
      "a b",
      "aa:bb:cc",
      "x".repeat(254),
    ]
  ) {
    assertThrows(() => parseAllowedHost(bad), /invalid allowed host/, bad);
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (text) => {
      try {
        const name = parseAllowedHost(text);
        return !/[\s/@*]/.test(name) && name === name.toLowerCase();
      } catch (error) {
        return error instanceof Error && error.message.includes("invalid allowed host");
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("config file: mgmt_allowed_hosts must be an array of strings", () => {
  assertEquals(parseFileConfig('{"mgmt_allowed_hosts":["a.lan"]}', "/c.json"), {
    mgmt_allowed_hosts: ["a.lan"],
  });
  assertThrows(() => parseFileConfig('{"mgmt_allowed_hosts":"a.lan"}', "/c.json"), /array of strings/);
  assertThrows(() => parseFileConfig('{"mgmt_allowed_hosts":[1]}', "/c.json"), /array of strings/);
  assertThrows(() => parseFileConfig('{"__proto__":"x"}', "/c.json"), /unknown key/);
});
