import fc from "fast-check";
import { assert, assertEquals } from "../tests/assert.ts";
import { gateRequest } from "./nvhttp_server.ts";

const base = { path: "/applist", sourceIp: "10.0.0.2", localAddress: "10.0.0.1", clientFingerprint: null };

Deno.test("nvhttp gate: HTTPS without a pinned certificate gets the 401 document on every path", () => {
  for (const path of ["/serverinfo", "/applist", "/launch", "/pair", "/nope"]) {
    const gate = gateRequest({ ...base, path, https: true, clientPaired: false }, `${path}?uniqueid=1`);
    assert(!gate.ok && String(gate.reply.body).includes('status_code="401"'), path);
  }
  const paired = gateRequest({ ...base, https: true, clientPaired: true }, "/applist?uniqueid=1");
  assert(paired.ok && paired.query.get("uniqueid") === "1");
});

Deno.test("nvhttp gate: HTTP serves only serverinfo/pair/unpair; bad queries are 400", () => {
  const applist = gateRequest({ ...base, https: false, clientPaired: false }, "/applist");
  assert(!applist.ok && applist.reply.status === 404);
  const pair = gateRequest({ ...base, path: "/pair", https: false, clientPaired: false }, "/pair?a=1&a=2");
  assert(!pair.ok && pair.reply.status === 400);
  const ok = gateRequest({ ...base, path: "/serverinfo", https: false, clientPaired: false }, "/serverinfo");
  assertEquals(ok.ok, true);
});

Deno.test("nvhttp gate fuzz: any request target yields a query or an XML reply", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), fc.boolean(), (target, https) => {
      const gate = gateRequest({ ...base, path: "/pair", https, clientPaired: true }, `/pair?${target}`);
      if (!gate.ok) assert(/status_code="\d+"/.test(String(gate.reply.body)));
    }),
    { numRuns: 2000 },
  );
});

Deno.test({
  name: "nvhttp: a request's closed signal aborts when the client drops the connection before the reply",
  sanitizeResources: false,
  fn: async () => {
    const { createSelfSignedCertificate } = await import("../host/x509.ts");
    const { Logger } = await import("../host/log.ts");
    const { startNvHttpServers } = await import("./nvhttp_server.ts");
    const net = await import("node:net");
    const tls = createSelfSignedCertificate({
      kind: "p256",
      commonName: "host",
      notAfter: new Date(Date.now() + 86_400_000),
    });
    const seen: { path: string; closed: AbortSignal }[] = [];
    let answer = () => {};
    const servers = await startNvHttpServers({
      bind: "127.0.0.1",
      httpPort: 0,
      httpsPort: 0,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      isPaired: () => false,
      log: new Logger("test", { level: "error", format: "json", sink: () => {} }),
      handle: (request) => {
        seen.push({ path: request.path, closed: request.closed });
        if (request.path === "/serverinfo") return { status: 200, body: "<root/>" };
        // "/pair" is held, as phase 1 is, until the test answers it.
        return new Promise((resolve) => answer = () => resolve({ status: 200, body: "<root/>" }));
      },
    });
    try {
      const held = net.connect({ host: "127.0.0.1", port: servers.httpPort });
      await new Promise((resolve) => held.once("connect", resolve));
      held.write("GET /pair?uniqueid=1 HTTP/1.1\r\nHost: h\r\n\r\n");
      const arrivalDeadline = Date.now() + 5_000;
      while (seen.length === 0) {
        if (Date.now() > arrivalDeadline) throw new Error("the held request never reached the handler");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assertEquals(seen[0].closed.aborted, false);
      const aborted = new Promise((resolve) => seen[0].closed.addEventListener("abort", resolve));
      held.destroy();
      let guard: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        aborted,
        new Promise((_, reject) =>
          guard = setTimeout(() => reject(new Error("closed never aborted")), 5_000)
        ),
      ]).finally(() => clearTimeout(guard));
      answer();

      // A request's signal is not aborted by answering it.
      const response = await fetch(`http://127.0.0.1:${servers.httpPort}/serverinfo`);
      assertEquals(response.status, 200);
      await response.body?.cancel();
      assertEquals(seen.at(-1)!.path, "/serverinfo");
      assertEquals(seen.at(-1)!.closed.aborted, false);
    } finally {
      await servers.close();
    }
  },
});
