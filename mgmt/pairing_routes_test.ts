import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import Ajv2020 from "ajv/dist/2020.js";
import { createMgmtApp } from "./app.ts";
import { fakeDeps } from "./test_deps.ts";
import type { PairingCeremony } from "./schemas.ts";

const JSON_HEADERS = { "content-type": "application/json" };
const seed = JSON.parse(
  Deno.readTextFileSync(new URL("../tests/fixtures/seed_openapi.json", import.meta.url)),
);

const ATTACKER: PairingCeremony = {
  id: "a".repeat(24),
  device_name: "roth",
  source_address: "192.168.1.66",
  started_unix: 1_700_000_000,
  expires_unix: 1_700_000_120,
};
const VICTIM: PairingCeremony = {
  id: "b".repeat(24),
  device_name: "Living room",
  source_address: "192.168.1.23",
  started_unix: 1_700_000_005,
  expires_unix: 1_700_000_125,
};

function submit(app: ReturnType<typeof createMgmtApp>["app"], body: unknown) {
  return app.request("/api/v1/pair/pin", {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify(body),
  });
}

Deno.test("GET /pair keeps the seed's pin_pending and lists the waiting ceremonies", async () => {
  const { deps, state } = fakeDeps();
  const mgmt = createMgmtApp(deps);
  let body = await (await mgmt.app.request("/api/v1/pair")).json();
  assertEquals(body, { pin_pending: false, ceremonies: [] });
  state.ceremonies = [ATTACKER, VICTIM];
  body = await (await mgmt.app.request("/api/v1/pair")).json();
  assertEquals(body, { pin_pending: true, ceremonies: [ATTACKER, VICTIM] });
  // The seed's own schema still accepts it, and so does ours as published.
  const ajv = new Ajv2020.default({ strict: false, validateFormats: false });
  ajv.addSchema({ $id: "seed", components: seed.components });
  assert(ajv.validate({ $ref: "seed#/components/schemas/PairingStatus" }, body), ajv.errorsText());
  const ours = new Ajv2020.default({ strict: false, validateFormats: false });
  ours.addSchema({ $id: "ours", components: mgmt.openApiDocument().components });
  assert(ours.validate({ $ref: "ours#/components/schemas/PairingStatus" }, body), ours.errorsText());
  const spec = mgmt.openApiDocument() as {
    components: { schemas: Record<string, { required?: string[] }> };
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  };
  assertEquals(spec.components.schemas.PairingCeremony.required?.toSorted(), [
    "device_name",
    "expires_unix",
    "id",
    "source_address",
    "started_unix",
  ]);
  assert("404" in spec.paths["/api/v1/pair/pin"].post.responses);
});

Deno.test("POST /pair/pin: several waiting and none named is 409 naming them; named reaches only that one", async () => {
  const { deps, state } = fakeDeps();
  const { app } = createMgmtApp(deps);
  state.ceremonies = [ATTACKER, VICTIM];
  let response = await submit(app, { pin: "5338" });
  assertEquals(response.status, 409);
  const { error } = await response.json();
  assertMatch(error, /2 pairing handshakes are waiting/);
  for (const ceremony of [ATTACKER, VICTIM]) {
    assert(error.includes(ceremony.id) && error.includes(ceremony.source_address), error);
    assert(error.includes(JSON.stringify(ceremony.device_name)), error);
  }
  assertEquals(state.submittedPins, []);

  response = await submit(app, { pin: "5338", ceremony_id: VICTIM.id });
  assertEquals(response.status, 204);
  assertEquals([state.submittedPins, state.submittedTo], [["5338"], [VICTIM.id]]);

  // Unknown id: 404 with the id; the same digits again: 409 with the reason.
  response = await submit(app, { pin: "1111", ceremony_id: "nope" });
  assertEquals(response.status, 404);
  assertMatch((await response.json()).error, /no pairing ceremony has id "nope"/);
  response = await submit(app, { pin: "5338", ceremony_id: ATTACKER.id });
  assertEquals(response.status, 409);
  assertMatch((await response.json()).error, /already delivered/);
  assertEquals(state.submittedTo, [VICTIM.id]);
  for (const ceremony_id of [5, "f".repeat(65)]) {
    response = await submit(app, { pin: "5338", ceremony_id });
    assertEquals(response.status, 422);
    await response.body?.cancel();
  }
});

Deno.test("POST /pair/pin: a well-formed PIN of any length 1–16 reaches the ceremony (not a false 'none waits')", async () => {
  for (const pin of ["7", "12345", "1234567890123456"]) {
    const { deps, state } = fakeDeps();
    const { app } = createMgmtApp(deps);
    state.ceremonies = [VICTIM];
    const response = await submit(app, { pin });
    assertEquals(response.status, 204, pin);
    assertEquals(state.submittedPins, [pin]);
  }
  const { deps } = fakeDeps();
  const { app } = createMgmtApp(deps);
  for (const pin of ["", "12345678901234567", "12 4"]) {
    const response = await submit(app, { pin });
    assertEquals(response.status, 400, pin);
    assertMatch((await response.json()).error, /1 to 16 ASCII digits/);
  }
});

Deno.test("DELETE /pair/{ceremony_id}: ends that ceremony (204), an unknown id is 404", async () => {
  const { deps, state } = fakeDeps();
  const mgmt = createMgmtApp(deps);
  state.ceremonies = [ATTACKER, VICTIM];
  const cancel = (id: string) => mgmt.app.request(`/api/v1/pair/${id}`, { method: "DELETE" });
  assertEquals((await cancel(ATTACKER.id)).status, 204);
  assertEquals(state.ceremonies, [VICTIM]);
  const unknown = await cancel(ATTACKER.id);
  assertEquals(unknown.status, 404);
  assertMatch((await unknown.json()).error, /no pairing ceremony in progress/);
  assertEquals((await cancel("x".repeat(65))).status, 400);
});
