/** Routes tagged "pairing": the out-of-band PIN half of the GameStream pairing ceremony. */
import { createRoute } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { errorBody, errorContent, UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { CeremonyIdParamSchema, PairingStatusSchema, SubmitPinSchema } from "./schemas.ts";
import type { PairingCeremony } from "./schemas.ts";

/** Moonlight shows 4 digits; the protocol accepts any short digit string. */
const PIN = /^[0-9]{1,16}$/;

/** `3f9c… (device "roth" from 192.168.1.23)`, for messages that must name ceremonies. */
function describeCeremony(ceremony: PairingCeremony): string {
  return `${ceremony.id} (device ${JSON.stringify(ceremony.device_name)} from ${ceremony.source_address})`;
}

export function registerPairingRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/pair",
      tags: ["pairing"],
      summary: "Pairing-flow status",
      description: "Poll this to know when to prompt the user for the PIN Moonlight displays. " +
        "`ceremonies` lists every handshake waiting for a PIN with the address it came from, so the user " +
        "can tell their own device from a stranger's and name it when submitting the PIN.",
      operationId: "getPairingStatus",
      responses: {
        200: {
          description: "Whether a pairing handshake is waiting for a PIN, and which",
          content: { "application/json": { schema: PairingStatusSchema } },
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => {
      const ceremonies = deps.gamestream.waitingCeremonies();
      return c.json({ pin_pending: ceremonies.length > 0, ceremonies }, 200);
    },
  );

  api.add(
    "token",
    createRoute({
      method: "post",
      path: "/api/v1/pair/pin",
      tags: ["pairing"],
      summary: "Submit the pairing PIN",
      description: "Delivers the PIN the Moonlight client is displaying, completing the out-of-band half " +
        "of the pairing handshake. Name the ceremony with `ceremony_id` (from `GET /api/v1/pair`); it may " +
        "be left out only while exactly one ceremony waits. A PIN is delivered to one ceremony only: the " +
        "same digits are refused afterwards (the client shows a new PIN when pairing is started again).",
      operationId: "submitPairingPin",
      request: {
        body: { content: { "application/json": { schema: SubmitPinSchema } }, required: true },
      },
      responses: {
        204: { description: "PIN delivered to the waiting handshake" },
        400: { description: "Malformed PIN or unparseable JSON body", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        404: { description: "No pairing ceremony has the given `ceremony_id`", content: errorContent },
        409: {
          description: "No pairing handshake is waiting for a PIN; or several wait and none was named " +
            "(the message names them); or the named ceremony no longer waits; or this PIN was already " +
            "delivered once",
          content: errorContent,
        },
        415: { description: "Body is not application/json", content: errorContent },
        422: { description: "JSON body does not match the schema", content: errorContent },
      },
    }),
    (c) => {
      const { pin, ceremony_id: ceremonyId } = c.req.valid("json");
      if (!PIN.test(pin)) return c.json(errorBody("pin must be 1 to 16 ASCII digits"), 400);
      const outcome = deps.gamestream.submitPin(pin, ceremonyId);
      switch (outcome.kind) {
        case "delivered":
          return c.body(null, 204);
        case "invalid-pin":
          return c.json(errorBody("pin must be 1 to 16 ASCII digits"), 400);
        case "no-handshake":
          return c.json(errorBody("no pairing handshake is waiting for a PIN"), 409);
        case "ambiguous":
          return c.json(
            errorBody(
              `${outcome.waiting.length} pairing handshakes are waiting for a PIN; name one with ` +
                `ceremony_id: ${outcome.waiting.map(describeCeremony).join(", ")}`,
            ),
            409,
          );
        case "unknown-ceremony":
          return c.json(errorBody(`no pairing ceremony has id ${JSON.stringify(ceremonyId)}`), 404);
        case "refused":
          return c.json(errorBody(outcome.reason), 409);
      }
    },
  );

  api.add(
    "token",
    createRoute({
      method: "delete",
      path: "/api/v1/pair/{ceremony_id}",
      tags: ["pairing"],
      summary: "Cancel a pairing ceremony",
      description:
        "Ends a pairing handshake, e.g. a stranger's that `GET /api/v1/pair` lists with an address " +
        "you do not know: its slot is freed at once instead of after its two-minute timeout. The client's " +
        "waiting request gets a failure.",
      operationId: "cancelPairingCeremony",
      request: { params: CeremonyIdParamSchema },
      responses: {
        204: { description: "Ceremony ended" },
        400: { description: "Malformed ceremony id", content: errorContent },
        ...UNAUTHORIZED_RESPONSE,
        404: { description: "No pairing ceremony in progress has that id", content: errorContent },
      },
    }),
    (c) => {
      const { ceremony_id: ceremonyId } = c.req.valid("param");
      if (!deps.gamestream.cancelCeremony(ceremonyId)) {
        return c.json(errorBody(`no pairing ceremony in progress has id ${JSON.stringify(ceremonyId)}`), 404);
      }
      return c.body(null, 204);
    },
  );
}
