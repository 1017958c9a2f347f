/** Routes tagged "clients": paired Moonlight clients (certificate-pinned). */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { errorBody, errorContent, UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { FingerprintParamSchema, PairedClientSchema } from "./schemas.ts";

const FINGERPRINT = /^[0-9a-fA-F]{64}$/;

/** Lower-cased fingerprint, or undefined when it is not 64 hex digits. */
export function normalizeFingerprint(text: string): string | undefined {
  return FINGERPRINT.test(text) ? text.toLowerCase() : undefined;
}

export function registerClientRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/clients",
      tags: ["clients"],
      summary: "List paired clients",
      operationId: "listPairedClients",
      responses: {
        200: {
          description: "All certificate-pinned clients",
          content: { "application/json": { schema: z.array(PairedClientSchema) } },
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(deps.gamestream.listClients(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "delete",
      path: "/api/v1/clients/{fingerprint}",
      tags: ["clients"],
      summary: "Unpair a client",
      description: "Removes the client's certificate from the pairing store; the HTTPS side then rejects " +
        "it, and a session it is streaming ends at once.",
      operationId: "unpairClient",
      request: { params: FingerprintParamSchema },
      responses: {
        204: { description: "Client unpaired" },
        400: { description: "Malformed fingerprint", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        404: { description: "No paired client with that fingerprint", content: errorContent },
      },
    }),
    (c) => {
      const fingerprint = normalizeFingerprint(c.req.valid("param").fingerprint);
      if (!fingerprint) return c.json(errorBody("fingerprint must be 64 hex digits (SHA-256)"), 400);
      if (!deps.gamestream.unpairClient(fingerprint)) {
        return c.json(errorBody(`no paired client with fingerprint ${fingerprint}`), 404);
      }
      return c.body(null, 204);
    },
  );
}
