/** Routes tagged "session": stop the active stream, force a keyframe. */
import { createRoute } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { errorBody, errorContent, UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";

export function registerSessionRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  api.add(
    "token",
    createRoute({
      method: "delete",
      path: "/api/v1/session",
      tags: ["session"],
      summary: "Stop the active session",
      description: "Kicks the connected client: stops the video/audio streams and clears the launch " +
        "state. Idempotent — succeeds even when nothing is streaming.",
      operationId: "stopSession",
      responses: { 204: { description: "Session stopped (or none was active)" }, ...UNAUTHORIZED_RESPONSE },
    }),
    (c) => {
      deps.gamestream.stopSession();
      return c.body(null, 204);
    },
  );

  api.add(
    "token",
    createRoute({
      method: "post",
      path: "/api/v1/session/idr",
      tags: ["session"],
      summary: "Force a keyframe",
      description: "Asks the encoder for an IDR frame on the active video stream (what a client requests " +
        "after unrecoverable loss — exposed for debugging).",
      operationId: "requestIdr",
      responses: {
        202: { description: "Keyframe requested" },
        ...UNAUTHORIZED_RESPONSE,
        409: { description: "No active video stream", content: errorContent },
      },
    }),
    (c) => {
      if (!deps.gamestream.requestIdr()) return c.json(errorBody("no active video stream"), 409);
      return c.body(null, 202);
    },
  );
}
