/** Routes tagged "pairing": the out-of-band PIN half of the GameStream pairing ceremony. */
import { createRoute } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { errorBody, errorContent, UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { PairingStatusSchema, SubmitPinSchema } from "./schemas.ts";

/** Moonlight shows 4 digits; the protocol accepts any short digit string. */
const PIN = /^[0-9]{1,16}$/;

export function registerPairingRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/pair",
      tags: ["pairing"],
      summary: "Pairing-flow status",
      description: "Poll this to know when to prompt the user for the PIN Moonlight displays.",
      operationId: "getPairingStatus",
      responses: {
        200: {
          description: "Whether a pairing handshake is waiting for a PIN",
          content: { "application/json": { schema: PairingStatusSchema } },
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json({ pin_pending: deps.gamestream.pinPending() }, 200),
  );

  api.add(
    "token",
    createRoute({
      method: "post",
      path: "/api/v1/pair/pin",
      tags: ["pairing"],
      summary: "Submit the pairing PIN",
      description: "Delivers the PIN the Moonlight client is displaying, completing the out-of-band half " +
        "of the pairing handshake.",
      operationId: "submitPairingPin",
      request: {
        body: { content: { "application/json": { schema: SubmitPinSchema } }, required: true },
      },
      responses: {
        204: { description: "PIN delivered to the waiting handshake" },
        400: { description: "Malformed PIN or unparseable JSON body", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        409: { description: "No pairing handshake is waiting for a PIN", content: errorContent },
        415: { description: "Body is not application/json", content: errorContent },
        422: { description: "JSON body does not match the schema", content: errorContent },
      },
    }),
    (c) => {
      const { pin } = c.req.valid("json");
      if (!PIN.test(pin)) return c.json(errorBody("pin must be 1 to 16 ASCII digits"), 400);
      if (deps.gamestream.submitPin(pin) === "no-handshake") {
        return c.json(errorBody("no pairing handshake is waiting for a PIN"), 409);
      }
      return c.body(null, 204);
    },
  );
}
