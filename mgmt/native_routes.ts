/** Routes tagged "native": punktfunk/1 pairing windows and paired devices. */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { errorBody, errorContent, UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { normalizeFingerprint } from "./clients_routes.ts";
import {
  ArmNativePairingSchema,
  FingerprintParamSchema,
  NativeClientSchema,
  NativePairStatusSchema,
} from "./schemas.ts";

/** Defaults and cap as in the original: two minutes, at most 15600 s (4 h 20 min). */
export const DEFAULT_PAIRING_TTL_SECS = 120;
export const MAX_PAIRING_TTL_SECS = 15600;

const DISABLED = { description: "Native host not enabled", content: errorContent } as const;
const NOT_ENABLED_MESSAGE = "the native punktfunk/1 host is not running on this host";

export function registerNativeRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  const native = deps.native;

  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/native/pair",
      tags: ["native"],
      summary: "Native pairing status",
      description: "The native (punktfunk/1) pairing window. Poll while armed to show the PIN + countdown. " +
        "`enabled: false` means this host runs no punktfunk/1 listener.",
      operationId: "getNativePairing",
      responses: {
        200: {
          description: "Native pairing status",
          content: { "application/json": { schema: NativePairStatusSchema } },
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(native.status(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "delete",
      path: "/api/v1/native/pair",
      tags: ["native"],
      summary: "Disarm native pairing",
      description: "Closes the pairing window immediately (no new ceremonies accepted).",
      operationId: "disarmNativePairing",
      responses: { 204: { description: "Pairing disarmed" }, ...UNAUTHORIZED_RESPONSE, 503: DISABLED },
    }),
    (c) => {
      if (!native.enabled) return c.json(errorBody(NOT_ENABLED_MESSAGE), 503);
      native.disarm();
      return c.body(null, 204);
    },
  );

  api.add(
    "token",
    createRoute({
      method: "post",
      path: "/api/v1/native/pair/arm",
      tags: ["native"],
      summary: "Arm native pairing",
      description: "Opens a pairing window and mints a fresh PIN to display. The user enters it on their " +
        "device within `ttl_secs`; the device then appears in the native client list.",
      operationId: "armNativePairing",
      request: {
        body: { content: { "application/json": { schema: ArmNativePairingSchema } }, required: true },
      },
      responses: {
        200: {
          description: "Pairing armed; the response carries the PIN to display",
          content: { "application/json": { schema: NativePairStatusSchema } },
        },
        400: { description: "Unparseable JSON body", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        415: { description: "Body is not application/json", content: errorContent },
        422: { description: "JSON body does not match the schema", content: errorContent },
        503: DISABLED,
      },
    }),
    (c) => {
      const { ttl_secs } = c.req.valid("json");
      if (!native.enabled) return c.json(errorBody(NOT_ENABLED_MESSAGE), 503);
      const ttl = Math.min(ttl_secs ?? DEFAULT_PAIRING_TTL_SECS, MAX_PAIRING_TTL_SECS);
      return c.json(native.arm(ttl), 200);
    },
  );

  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/native/clients",
      tags: ["native"],
      summary: "List native paired clients",
      operationId: "listNativeClients",
      responses: {
        200: {
          description: "Paired native clients",
          content: { "application/json": { schema: z.array(NativeClientSchema) } },
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(native.listClients(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "delete",
      path: "/api/v1/native/clients/{fingerprint}",
      tags: ["native"],
      summary: "Unpair a native client",
      description: "Removes a punktfunk/1 client from the native trust store by fingerprint.",
      operationId: "unpairNativeClient",
      request: { params: FingerprintParamSchema },
      responses: {
        204: { description: "Client unpaired" },
        400: { description: "Malformed fingerprint", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        404: { description: "No paired native client with that fingerprint", content: errorContent },
        503: DISABLED,
      },
    }),
    (c) => {
      const fingerprint = normalizeFingerprint(c.req.valid("param").fingerprint);
      if (!fingerprint) return c.json(errorBody("fingerprint must be 64 hex digits (SHA-256)"), 400);
      if (!native.enabled) return c.json(errorBody(NOT_ENABLED_MESSAGE), 503);
      if (!native.unpairClient(fingerprint)) {
        return c.json(errorBody(`no paired native client with fingerprint ${fingerprint}`), 404);
      }
      return c.body(null, 204);
    },
  );
}
