/**
 * `/api/v1/status` with the live figures (issue 8): still valid under the original's RuntimeStatus schema (the
 * addition is an extra optional property), and valid under our generated document, which describes it.
 */
import { assert, assertEquals } from "../tests/assert.ts";
import Ajv2020 from "ajv/dist/2020.js";
import { createMgmtApp } from "./app.ts";
import { fakeDeps } from "./test_deps.ts";
import type { LiveStream, RuntimeStatus } from "./schemas.ts";

const TOKEN = "test-token-0123456789abcdef";

const LIVE: LiveStream = {
  client_address: "192.0.2.20:50123",
  encoder: "libx264",
  encoder_fallbacks: 1,
  fps: 59.8,
  bitrate_kbps: 4480,
  target_bitrate_kbps: 4000,
  frames_sent: 600,
  packets_sent: 5400,
  keyframes_sent: 3,
  idr_requests: 1,
  fec_recovered: 2,
  fec_failed: 0,
  host_processing_us: { p50: 2900, p99: 6300 },
  rtt_ms: 4.5,
  updated_unix_ms: 1_796_410_271_707,
};

function validator(document: { components: unknown }, schema: string) {
  const ajv = new Ajv2020.default({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ $id: "doc", components: document.components });
  const validate = ajv.compile({ $ref: `doc#/components/schemas/${schema}` });
  return (body: unknown) =>
    validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

async function statusWith(live: LiveStream | null | Record<string, unknown>) {
  const { deps } = fakeDeps(TOKEN);
  const base = deps.status();
  const { app, openApiDocument } = createMgmtApp({
    ...deps,
    status: () => ({ ...base, video_streaming: true, live } as RuntimeStatus),
  });
  const response = await app.request("/api/v1/status", { headers: { authorization: `Bearer ${TOKEN}` } });
  assertEquals(response.status, 200);
  return { body: await response.json(), document: openApiDocument() as { components: unknown } };
}

Deno.test("status with live figures validates against the seed's RuntimeStatus and our own", async () => {
  const seed = JSON.parse(
    Deno.readTextFileSync(new URL("../tests/fixtures/seed_openapi.json", import.meta.url)),
  );
  for (const live of [LIVE, { ...LIVE, rtt_ms: null }, null]) {
    const { body, document } = await statusWith(live);
    assertEquals(body.live, live);
    assertEquals(validator(seed, "RuntimeStatus")(body), []);
    assertEquals(validator(document, "RuntimeStatus")(body), []);
  }
});

Deno.test("our RuntimeStatus schema rejects a malformed live object (so the check above can fail)", async () => {
  const { body, document } = await statusWith({ ...LIVE, fps: "fast", host_processing_us: null });
  const errors = validator(document, "RuntimeStatus")(body);
  assert(errors.some((e) => e.includes("/live/fps")), errors.join("; "));
});
