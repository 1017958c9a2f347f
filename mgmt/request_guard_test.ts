import { assert, assertEquals } from "../tests/assert.ts";
import fc from "fast-check";
import {
  buildHostAllowList,
  canonicalHostName,
  checkDeclaredLength,
  checkHostAndOrigin,
  isLoopbackName,
  MAX_BODY_BYTES,
  parseHostHeader,
  sameOrigin,
} from "./request_guard.ts";
import type { GuardVerdict, HostAllowList } from "./request_guard.ts";

const LIST = buildHostAllowList({
  bindHost: "127.0.0.1",
  hostname: "Gamer-PC",
  configured: ["console.example.lan", "192.168.1.20", "fe80::1"],
});

function check(list: HostAllowList, host: string | null, extra: Partial<{
  method: string;
  url: string;
  origin: string | null;
}> = {}): GuardVerdict {
  return checkHostAndOrigin(list, {
    method: extra.method ?? "GET",
    url: extra.url ?? `http://${host ?? "localhost"}/api/v1/status`,
    host,
    origin: extra.origin ?? null,
  });
}

const port = fc.integer({ min: 0, max: 65535 });
const octet = fc.integer({ min: 0, max: 255 });
/** The test's own idea of loopback, independent of the module's. */
function loopbackOracle(canonical: string): boolean {
  if (canonical === "localhost" || canonical === "[::1]") return true;
  const octets = canonical.split(".");
  return octets.length === 4 && octets[0] === "127" &&
    octets.every((o) => /^\d+$/.test(o) && Number(o) < 256);
}

/** Names that are none of ours: any domain except the allowed ones and `localhost`. */
const foreignName = fc.oneof(
  fc.domain(),
  fc.constantFrom(
    "evil.example",
    "attacker.com",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "gamer-pc.lan",
  ),
).filter((name) => {
  const canonical = canonicalHostName(name);
  return canonical !== undefined && !loopbackOracle(canonical) && !LIST.names.has(canonical);
});

Deno.test("property: loopback names are allowed with any port", () => {
  fc.assert(
    fc.property(octet, octet, octet, port, fc.constantFrom("", "LOCALHOST", "localhost", "[::1]"), (
      a,
      b,
      c,
      p,
      name,
    ) => {
      const host = `${name === "" ? `127.${a}.${b}.${c}` : name}:${p}`;
      assertEquals(check(LIST, host), { allowed: true }, host);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: a name that is not ours is refused with 421, with or without a port", () => {
  fc.assert(
    fc.property(foreignName, fc.option(port), (name, p) => {
      const host = p === null ? name : `${name}:${p}`;
      const verdict = check(LIST, host);
      assert(!verdict.allowed && verdict.kind === "host" && verdict.status === 421, host);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("property: arbitrary Host headers never throw and allow only names on the list", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), fc.constantFrom("GET", "POST"), (host, method) => {
      const verdict = check(LIST, host, { method, url: "http://127.0.0.1/api/v1/status" });
      const parsed = parseHostHeader(host);
      if (verdict.allowed) {
        assert(parsed !== undefined && (loopbackOracle(parsed.name) || LIST.names.has(parsed.name)), host);
        assertEquals(isLoopbackName(parsed.name), loopbackOracle(parsed.name), host);
      } else {
        assertEquals([verdict.kind, verdict.status], ["host", 421]);
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("the bound address, the hostname, hostname.local and configured names are allowed", () => {
  for (
    const host of [
      "127.0.0.1:47990",
      "gamer-pc",
      "Gamer-PC:47990",
      "gamer-pc.local:47990",
      "gamer-pc.local.",
      "console.example.lan",
      "CONSOLE.example.lan:8443",
      "192.168.1.20:47990",
      "[fe80::1]:47990",
      "[FE80:0:0::1]",
      "[::1]:1",
      "[0:0:0:0:0:0:0:1]:47990",
      "127.1:47990", // the URL parser's IPv4 shorthand, what a browser would turn it into
    ]
  ) {
    assertEquals(check(LIST, host), { allowed: true }, host);
  }
  const onLan = buildHostAllowList({ bindHost: "192.168.1.7", hostname: "box" });
  assertEquals(check(onLan, "192.168.1.7:47990"), { allowed: true });
  assert(!check(onLan, "192.168.1.8:47990").allowed, "another LAN address is not ours");
});

Deno.test("rebinding and smuggling tricks are refused", () => {
  for (
    const host of [
      "evil.example:47990",
      "localhost.evil.example",
      "127.0.0.1.evil.example",
      "evil.example@127.0.0.1",
      "127.0.0.1@evil.example",
      "127.0.0.1:47990@evil.example",
      "%6cocalhost",
      "127.0.0.1 ",
      " 127.0.0.1",
      "127.0.0.1:",
      "127.0.0.1:99999",
      "[::1]evil",
      "[::2]",
      "localhost\\evil.example",
      "localhost/evil.example",
      "",
      "gamer-pc.evil.example",
      "a".repeat(300),
    ]
  ) {
    const verdict = check(LIST, host, { url: "http://127.0.0.1/api/v1/status" });
    assert(!verdict.allowed && verdict.status === 421, JSON.stringify(host));
    assert(!verdict.message.includes("a".repeat(100)), "long names are cut in the message");
  }
  // Absolute-form target: the URL's authority is checked too, whatever the Host header says.
  assert(!check(LIST, "127.0.0.1", { url: "http://evil.example/api/v1/status" }).allowed);
  // No Host header (HTTP/1.0; HTTP/2 moves it to the URL): the URL's authority decides.
  assertEquals(check(LIST, null, { url: "http://localhost:47990/" }), { allowed: true });
  assert(!check(LIST, null, { url: "http://evil.example:47990/" }).allowed);
});

Deno.test("a wildcard bind allows the interface addresses; a specific bind does not", () => {
  const interfaceAddresses = ["10.0.0.5", "fe80::abcd%eth0", "127.0.0.1"];
  const wildcard = buildHostAllowList({ bindHost: "0.0.0.0", interfaceAddresses });
  assertEquals(check(wildcard, "10.0.0.5:47990"), { allowed: true });
  assertEquals(check(wildcard, "[fe80::abcd]:47990"), { allowed: true });
  assert(!check(wildcard, "0.0.0.0:47990").allowed, "the wildcard itself is no name");
  const specific = buildHostAllowList({ bindHost: "127.0.0.1", interfaceAddresses });
  assert(!check(specific, "10.0.0.5:47990").allowed);
});

Deno.test("property: state-changing requests need a same-origin Origin when they carry one", () => {
  const method = fc.constantFrom("POST", "PUT", "PATCH", "DELETE", "post");
  const ourHost = fc.constantFrom("127.0.0.1:47990", "localhost:47990", "[::1]:47990", "gamer-pc.local:8080");
  fc.assert(
    fc.property(method, ourHost, foreignName, port, (m, host, foreign, p) => {
      const url = `http://${host}/api/v1/pair/pin`;
      assertEquals(check(LIST, host, { method: m, url }), { allowed: true }, "no Origin: curl, CLI");
      assertEquals(check(LIST, host, { method: m, url, origin: `http://${host}` }), { allowed: true });
      for (
        const origin of [
          `http://${foreign}`,
          `http://${foreign}:${p}`,
          `https://${host}`, // another scheme is another origin
          "null",
        ]
      ) {
        const verdict = check(LIST, host, { method: m, url, origin });
        assert(!verdict.allowed && verdict.kind === "origin" && verdict.status === 403, `${m} ${origin}`);
      }
      // Another of our own names on another port is another origin too (a different local web app).
      const [name] = host.split(/:(?=\d+$)/);
      if (p !== 47990 && p !== 8080) {
        const verdict = check(LIST, host, { method: m, url, origin: `http://${name}:${p}` });
        assert(!verdict.allowed, `${m} from port ${p}`);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("reads with a foreign Origin pass the guard (CORS keeps the answer from the page)", () => {
  for (const method of ["GET", "HEAD", "OPTIONS"]) {
    const verdict = check(LIST, "127.0.0.1:47990", { method, origin: "http://evil.example" });
    assertEquals(verdict, { allowed: true }, method);
  }
});

Deno.test("sameOrigin normalizes case and default ports and rejects non-origins", () => {
  assert(sameOrigin("http://localhost", "http://localhost:80/x"));
  assert(sameOrigin("HTTP://LocalHost:47990", "http://localhost:47990/"));
  assert(sameOrigin("https://127.0.0.1", "https://127.0.0.1:443/"));
  for (
    const origin of [
      "null",
      "http://localhost/",
      "http://localhost/path",
      "http://user@localhost",
      "http://localhost?x",
      "localhost",
      "",
      "file:///etc",
    ]
  ) {
    assert(!sameOrigin(origin, "http://localhost/"), origin);
  }
});

Deno.test("declared body length: over the limit is refused, missing or chunked is streamed", () => {
  assertEquals(checkDeclaredLength(String(MAX_BODY_BYTES), null), { allowed: true });
  const tooLarge = checkDeclaredLength(String(MAX_BODY_BYTES + 1), null);
  assert(tooLarge !== "stream" && !tooLarge.allowed && tooLarge.status === 413);
  assertEquals(checkDeclaredLength(null, null), "stream");
  assertEquals(checkDeclaredLength("10", "chunked"), "stream");
  assertEquals(checkDeclaredLength("1e3", null), "stream");
  const huge = checkDeclaredLength("99999999999999999999", null);
  assert(huge !== "stream" && !huge.allowed);
});
