import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import fc from "fast-check";
import Ajv2020 from "ajv/dist/2020.js";
import { createMgmtApp, serializeOpenApi } from "./app.ts";
import { fakeDeps } from "./test_deps.ts";
import { bearerToken, tokenMatches } from "./api_builder.ts";
import { MAX_BODY_BYTES } from "./request_guard.ts";

const TOKEN = "test-token-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const JSON_AUTH = { ...AUTH, "content-type": "application/json" };

const seed = JSON.parse(
  Deno.readTextFileSync(new URL("../tests/fixtures/seed_openapi.json", import.meta.url)),
) as {
  paths: Record<string, Record<string, SeedOperation>>;
  components: { schemas: Record<string, SeedSchema> };
};

interface SeedOperation {
  operationId: string;
  tags: string[];
  security?: unknown[];
  responses: Record<string, unknown>;
}
interface SeedSchema {
  required?: string[];
  properties?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

/** Validates a body against a named schema of the seed document (the original's OpenAPI). */
function seedValidator() {
  const ajv = new Ajv2020.default({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema({ $id: "seed", components: seed.components });
  return (schemaName: string, body: unknown) => {
    const validate = ajv.compile({ $ref: `seed#/components/schemas/${schemaName}` });
    const ok = validate(body);
    return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}

function allSeedOperations(): { method: string; path: string; op: SeedOperation }[] {
  return Object.entries(seed.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op }))
  );
}

function concretePath(path: string): string {
  return path.replace("{fingerprint}", "ab".repeat(32));
}

Deno.test("health is open and matches the seed's Health schema", async () => {
  const { deps } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  const response = await app.request("/api/v1/health");
  assertEquals(response.status, 200);
  const body = await response.json();
  assertEquals(body.status, "ok");
  assertEquals(seedValidator()("Health", body), []);
});

Deno.test("the four baseline routes' responses validate against the seed schemas", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  const validate = seedValidator();
  for (const streaming of [false, true]) {
    state.streaming = streaming;
    for (
      const [path, schema, isArray] of [
        ["/api/v1/host", "HostInfo", false],
        ["/api/v1/status", "RuntimeStatus", false],
        ["/api/v1/compositors", "AvailableCompositor", true],
        ["/api/v1/clients", "PairedClient", true],
        ["/api/v1/pair", "PairingStatus", false],
        ["/api/v1/native/pair", "NativePairStatus", false],
        ["/api/v1/native/clients", "NativeClient", true],
      ] as const
    ) {
      const response = await app.request(path, { headers: AUTH });
      assertEquals(response.status, 200, path);
      const body = await response.json();
      const items = isArray ? body : [body];
      assert(Array.isArray(items), `${path} returns an array`);
      for (const item of items) assertEquals(validate(schema, item), [], `${path} against ${schema}`);
    }
  }
});

Deno.test("the seed validator rejects a wrong body (so the schema checks can fail)", () => {
  const validate = seedValidator();
  assert(validate("Health", { status: "ok", version: "1" }).length > 0);
  assert(validate("RuntimeStatus", { video_streaming: "no" }).length > 0);
});

Deno.test("every route has an explicit auth decision and token routes answer 401 without it", async () => {
  const { deps } = fakeDeps(TOKEN);
  const mgmt = createMgmtApp(deps);
  const document = mgmt.openApiDocument() as {
    paths: Record<string, Record<string, { security?: unknown }>>;
  };
  const decided = new Map(mgmt.routes().map((r) => [`${r.method} ${r.path}`, r.auth]));

  // Every route Hono would dispatch to is in the decision table.
  for (const route of mgmt.app.routes) {
    if (route.method === "ALL") continue; // middleware
    const openApiPath = route.path.replace(/:([a-z_]+)/g, "{$1}");
    assert(
      decided.has(`${route.method} ${openApiPath}`),
      `no auth decision for ${route.method} ${route.path}`,
    );
  }
  // Every documented operation is in it too, and the document says the same thing.
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const auth = decided.get(`${method.toUpperCase()} ${path}`);
      assert(auth !== undefined, `no auth decision for documented ${method} ${path}`);
      assertEquals(JSON.stringify(operation.security) === "[{}]", auth === "open", `${method} ${path}`);
    }
  }
  for (const { method, path, auth } of mgmt.routes()) {
    const response = await mgmt.app.request(concretePath(path), { method });
    if (auth === "token") {
      assertEquals(response.status, 401, `${method} ${path}`);
      assertEquals(await response.json(), { error: "missing or invalid bearer token" });
      assertEquals(response.headers.get("www-authenticate"), 'Bearer realm="punktfunk"');
    } else {
      assert(response.status !== 401, `${method} ${path} is open`);
    }
  }
  assertEquals(
    [...decided.values()].filter((a) => a === "open").length,
    2,
    "only health and the spec are open",
  );
});

Deno.test("a wrong token is rejected, the right one accepted, with any scheme case", async () => {
  const { deps } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  for (const header of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, TOKEN, "Bearer"]) {
    const response = await app.request("/api/v1/status", { headers: { authorization: header } });
    assertEquals(response.status, 401, header);
  }
  assertEquals(
    (await app.request("/api/v1/status", { headers: { authorization: `bearer ${TOKEN}` } })).status,
    200,
  );
});

Deno.test("without a configured token (loopback) every route is reachable", async () => {
  const { deps } = fakeDeps(undefined);
  const { app } = createMgmtApp(deps);
  assertEquals((await app.request("/api/v1/status")).status, 200);
});

Deno.test("error envelope: 404, 405 with Allow, 415, 400, 422", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  const cases: [string, RequestInit, number][] = [
    ["/api/v1/nothing-here", { headers: AUTH }, 404],
    ["/api/v1/status", { method: "POST", headers: AUTH }, 405],
    [
      "/api/v1/pair/pin",
      { method: "POST", headers: { ...AUTH, "content-type": "text/plain" }, body: "1234" },
      415,
    ],
    ["/api/v1/pair/pin", { method: "POST", headers: AUTH, body: '{"pin":"1234"}' }, 415],
    ["/api/v1/pair/pin", { method: "POST", headers: JSON_AUTH, body: '{"pin":' }, 400],
    ["/api/v1/pair/pin", { method: "POST", headers: JSON_AUTH, body: '{"pin":1234}' }, 422],
    ["/api/v1/pair/pin", { method: "POST", headers: JSON_AUTH, body: "[]" }, 422],
    ["/api/v1/pair/pin", { method: "POST", headers: JSON_AUTH, body: '{"pin":"12ab"}' }, 400],
    ["/api/v1/pair/pin", { method: "POST", headers: JSON_AUTH, body: '{"pin":"1234"}' }, 409],
    ["/api/v1/clients/xyz", { method: "DELETE", headers: AUTH }, 400],
    ["/api/v1/clients/" + "ef".repeat(32), { method: "DELETE", headers: AUTH }, 404],
    ["/api/v1/session/idr", { method: "POST", headers: AUTH }, 409],
    ["/api/v1/native/pair/arm", { method: "POST", headers: JSON_AUTH, body: '{"ttl_secs":-1}' }, 422],
    ["/api/v1/native/pair/arm", { method: "POST", headers: JSON_AUTH, body: "{}" }, 503],
    ["/api/v1/native/pair", { method: "DELETE", headers: AUTH }, 503],
  ];
  for (const [path, init, status] of cases) {
    const response = await app.request(path, init);
    assertEquals(response.status, status, `${init.method ?? "GET"} ${path} ${init.body ?? ""}`);
    const body = await response.json();
    assertEquals(Object.keys(body), ["error"]);
    assertMatch(body.error, /\S/);
    if (status === 405) assertEquals(response.headers.get("allow"), "GET");
  }
  assertEquals(state.submittedPins, []);
});

Deno.test("pairing PIN, unpair, session stop and IDR do what the seed says", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  state.pinPending = true;
  let response = await app.request("/api/v1/pair/pin", {
    method: "POST",
    headers: JSON_AUTH,
    body: '{"pin":"0042"}',
  });
  assertEquals(response.status, 204);
  assertEquals(state.submittedPins, ["0042"]);

  const fingerprint = state.clients[0].fingerprint;
  response = await app.request(`/api/v1/clients/${fingerprint.toUpperCase()}`, {
    method: "DELETE",
    headers: AUTH,
  });
  assertEquals(response.status, 204);
  assertEquals(state.clients, []);

  state.streaming = true;
  assertEquals((await app.request("/api/v1/session/idr", { method: "POST", headers: AUTH })).status, 202);
  assertEquals(state.idrRequests, 1);
  for (let i = 0; i < 2; i++) {
    assertEquals((await app.request("/api/v1/session", { method: "DELETE", headers: AUTH })).status, 204);
  }
  assertEquals(state.streaming, false);

  state.nativeEnabled = true;
  response = await app.request("/api/v1/native/pair/arm", {
    method: "POST",
    headers: JSON_AUTH,
    body: '{"ttl_secs":999999}',
  });
  assertEquals(response.status, 200);
  assertEquals(state.armedTtl, 15600, "ttl is clamped");
  assertEquals(seedValidator()("NativePairStatus", await response.json()), []);
});

Deno.test("the generated spec holds every operation of the seed with its status codes and tags", () => {
  const { deps } = fakeDeps(TOKEN);
  const ours = createMgmtApp(deps).openApiDocument() as typeof seed;
  for (const { method, path, op } of allSeedOperations()) {
    const mine = ours.paths[path]?.[method.toLowerCase()];
    assert(mine, `missing ${method} ${path}`);
    assertEquals(mine.operationId, op.operationId, `${method} ${path}`);
    assertEquals(mine.tags, op.tags, `${method} ${path}`);
    const seedCodes = Object.keys(op.responses);
    for (const code of seedCodes) assert(code in mine.responses, `${method} ${path} lacks ${code}`);
    assertEquals(
      JSON.stringify(mine.security ?? null),
      JSON.stringify(op.security ?? null),
      `${method} ${path}`,
    );
  }
});

/** Compares a schema property ignoring prose; treats anyOf/oneOf of [null, $ref] as the same. */
function normalizeProperty(property: Record<string, unknown>): unknown {
  const { description: _d, example: _e, ...rest } = property;
  const alternatives = (rest.oneOf ?? rest.anyOf) as Record<string, unknown>[] | undefined;
  if (alternatives) {
    return { union: alternatives.map((a) => normalizeProperty(a)).map((a) => JSON.stringify(a)).sort() };
  }
  return rest;
}

Deno.test("component schemas match the seed's: names, required fields, property types", () => {
  const { deps } = fakeDeps(TOKEN);
  const ours = createMgmtApp(deps).openApiDocument() as typeof seed;
  for (const [name, seedSchema] of Object.entries(seed.components.schemas)) {
    const mine = ours.components.schemas[name];
    assert(mine, `missing schema ${name}`);
    // Every seed property stays, with its required-ness; we may add properties (never remove one).
    const seedProperties = Object.keys(seedSchema.properties ?? {});
    assertEquals(
      (mine.required ?? []).filter((property) => seedProperties.includes(property)).toSorted(),
      (seedSchema.required ?? []).toSorted(),
      `${name}.required`,
    );
    const mineProperties = Object.keys(mine.properties ?? {});
    for (const property of seedProperties) assert(mineProperties.includes(property), `${name}.${property}`);
    for (const [prop, spec] of Object.entries(seedSchema.properties ?? {})) {
      assertEquals(normalizeProperty(mine.properties![prop]), normalizeProperty(spec), `${name}.${prop}`);
    }
    assertEquals(mine.enum, seedSchema.enum, `${name}.enum`);
  }
});

Deno.test("api/openapi.json is what the routes generate (fails on drift)", () => {
  const { deps } = fakeDeps(TOKEN);
  const generated = serializeOpenApi(createMgmtApp(deps).openApiDocument());
  const checkedIn = Deno.readTextFileSync(new URL("../api/openapi.json", import.meta.url));
  assertEquals(checkedIn, generated, "run `deno task openapi` and commit api/openapi.json");
});

Deno.test("the spec is served without a token", async () => {
  const { deps } = fakeDeps(TOKEN);
  const mgmt = createMgmtApp(deps);
  const response = await mgmt.app.request("/api/v1/openapi.json");
  assertEquals(response.status, 200);
  assertEquals(await response.json(), mgmt.openApiDocument());
});

Deno.test("fuzz: arbitrary bodies, content types and paths never crash and always get an envelope", async () => {
  const { deps } = fakeDeps(TOKEN);
  const { app } = createMgmtApp(deps);
  const paths = ["/api/v1/pair/pin", "/api/v1/native/pair/arm", "/api/v1/clients/", "/api/v1/"];
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...paths),
      fc.string({ maxLength: 80 }),
      fc.constantFrom("POST", "GET", "DELETE", "PUT", "PATCH"),
      fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 })),
      fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-8", ""),
      async (path, suffix, method, body, contentType) => {
        const url = path + encodeURIComponent(suffix);
        const headers: Record<string, string> = { ...AUTH };
        if (contentType) headers["content-type"] = contentType;
        const response = await app.request(url, {
          method,
          headers,
          body: method === "GET" ? undefined : body,
        });
        // 503 is the seed's answer for a disabled native plane; anything else 5xx is a crash.
        assert(response.status < 500 || response.status === 503, `${method} ${url} → ${response.status}`);
        if (response.status >= 400) {
          const parsed = await response.json();
          assertEquals(typeof parsed.error, "string");
        } else {
          await response.body?.cancel();
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("bearerToken and tokenMatches", () => {
  assertEquals(bearerToken("Bearer abc"), "abc");
  assertEquals(bearerToken("bearer   abc  "), "abc");
  assertEquals(bearerToken("Bearer a b"), undefined);
  assertEquals(bearerToken(undefined), undefined);
  assert(tokenMatches("same-token", "same-token"));
  assert(!tokenMatches("same-token", "same-tokeN"));
  assert(!tokenMatches("", "x"));
});

/** A request as Deno.serve would build it: the URL's authority is the Host header. */
function hostRequest(host: string, path: string, init: RequestInit = {}): Request {
  const headers = new Headers(init.headers);
  headers.set("host", host);
  return new Request(`http://${host}${path}`, { ...init, headers });
}

Deno.test("Host allow-list: a foreign name gets 421 before auth, loopback and configured names pass", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const mgmt = createMgmtApp(deps, { bindHost: "127.0.0.1", hostname: "gamer-pc", allowedHosts: ["tv.lan"] });
  for (const host of ["evil.example:47990", "evil.example", "127.0.0.1.evil.example:47990"]) {
    const response = await mgmt.app.request(hostRequest(host, "/api/v1/status"));
    assertEquals(response.status, 421, host);
    const body = await response.json();
    assertEquals(Object.keys(body), ["error"]);
    assertMatch(body.error, /not a name of this host/);
  }
  // Even the open health route is refused: a rebinding page learns nothing.
  assertEquals((await mgmt.app.request(hostRequest("evil.example", "/api/v1/health"))).status, 421);
  assertEquals(mgmt.refusals(), { host: 4, origin: 0, body_too_large: 0 });
  for (
    const host of ["127.0.0.1:47990", "localhost:47990", "[::1]:47990", "gamer-pc.local:47990", "TV.lan:1"]
  ) {
    const response = await mgmt.app.request(hostRequest(host, "/api/v1/status", { headers: AUTH }));
    assertEquals(response.status, 200, host);
    await response.body?.cancel();
  }
  const warnings = state.logLines.map((line) => JSON.parse(line)).filter((l) => l.level === "warn");
  assert(warnings.some((l) => l.reason === "host" && /evil\.example/.test(l.detail)), "refusals are logged");
});

Deno.test("Origin: a cross-origin POST is refused with 403 and changes nothing; same-origin and none pass", async () => {
  const { deps, state } = fakeDeps(undefined);
  const mgmt = createMgmtApp(deps);
  state.pinPending = true;
  const pin = (origin?: string) =>
    mgmt.app.request(hostRequest("127.0.0.1:47990", "/api/v1/pair/pin", {
      method: "POST",
      headers: { "content-type": "application/json", ...(origin ? { origin } : {}) },
      body: '{"pin":"1234"}',
    }));
  for (const origin of ["http://evil.example", "http://127.0.0.1:8080", "https://127.0.0.1:47990", "null"]) {
    const response = await pin(origin);
    assertEquals(response.status, 403, origin);
    assertMatch((await response.json()).error, /cross-origin/);
  }
  const deleted = await mgmt.app.request(
    hostRequest("127.0.0.1:47990", "/api/v1/session", {
      method: "DELETE",
      headers: { origin: "http://evil.example" },
    }),
  );
  assertEquals(deleted.status, 403);
  await deleted.body?.cancel();
  assertEquals([state.submittedPins, state.stopRequests], [[], 0]);
  assertEquals(mgmt.refusals().origin, 5);

  assertEquals((await pin("http://127.0.0.1:47990")).status, 204, "same-origin (the future console)");
  state.pinPending = true;
  assertEquals((await pin()).status, 204, "no Origin (curl, CLI)");
  assertEquals(state.submittedPins, ["1234", "1234"]);
});

/** A body stream of `total` bytes in 64 KiB chunks that records how much was pulled and whether it was cancelled. */
function countingBody(total: number) {
  const chunk = new Uint8Array(65536).fill(0x20);
  const seen = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (seen.pulled >= total) return controller.close();
      seen.pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
    cancel() {
      seen.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, seen };
}

Deno.test("body limit: a declared 100 MB body is refused with 413 without reading a byte", async () => {
  const { deps, state } = fakeDeps(undefined);
  const mgmt = createMgmtApp(deps);
  state.pinPending = true;
  const { stream, seen } = countingBody(100 * 1024 * 1024);
  const response = await mgmt.app.request(hostRequest("127.0.0.1:47990", "/api/v1/pair/pin", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": String(100 * 1024 * 1024) },
    body: stream,
  }));
  assertEquals(response.status, 413);
  assertEquals(await response.json(), { error: `request body exceeds ${MAX_BODY_BYTES} bytes` });
  assertEquals(seen.pulled, 0);
  assertEquals(mgmt.refusals().body_too_large, 1);
  assertEquals(state.submittedPins, []);
});

Deno.test("body limit: a chunked body is counted as it streams and cancelled past the limit", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const mgmt = createMgmtApp(deps);
  state.pinPending = true;
  const { stream, seen } = countingBody(100 * 1024 * 1024);
  const response = await mgmt.app.request(hostRequest("127.0.0.1:47990", "/api/v1/pair/pin", {
    method: "POST",
    headers: JSON_AUTH,
    body: stream,
  }));
  assertEquals(response.status, 413);
  assertMatch((await response.json()).error, /exceeds 4096 bytes/);
  assert(seen.pulled <= MAX_BODY_BYTES + 65536, `read ${seen.pulled} bytes`);
  assert(seen.cancelled, "the rest of the body is cancelled, not drained");
  assertEquals(state.submittedPins, []);
});

Deno.test("body limit: exactly the limit reaches the route, one byte more does not", async () => {
  const { deps, state } = fakeDeps(TOKEN);
  const mgmt = createMgmtApp(deps);
  const json = '{"pin":"0042"}';
  for (const [size, status] of [[MAX_BODY_BYTES, 204], [MAX_BODY_BYTES + 1, 413]] as const) {
    state.pinPending = true;
    const body = json + " ".repeat(size - json.length);
    for (const declared of [true, false]) {
      state.pinPending = true;
      const headers = { ...JSON_AUTH, ...(declared ? { "content-length": String(size) } : {}) };
      const response = await mgmt.app.request(
        hostRequest("localhost:47990", "/api/v1/pair/pin", { method: "POST", headers, body }),
      );
      assertEquals(response.status, status, `${size} bytes, content-length ${declared}`);
      await response.body?.cancel();
    }
  }
  assertEquals(state.submittedPins, ["0042", "0042"]);
});

Deno.test("refusals are counted one by one but logged at 1, 2, 4, 8 … so a flood cannot fill the log", async () => {
  const { deps, state } = fakeDeps(undefined);
  const mgmt = createMgmtApp(deps);
  for (let i = 0; i < 100; i++) {
    const response = await mgmt.app.request(hostRequest("evil.example", "/api/v1/status"));
    await response.body?.cancel();
  }
  assertEquals(mgmt.refusals().host, 100);
  const logged = state.logLines.map((line) => JSON.parse(line)).filter((l) => l.reason === "host");
  assertEquals(logged.map((l) => l.count), [1, 2, 4, 8, 16, 32, 64]);
});
