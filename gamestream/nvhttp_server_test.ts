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
