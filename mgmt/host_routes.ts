/** Routes tagged "host": liveness, identity and capabilities, live status, compositors. */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiBuilder } from "./api_builder.ts";
import { UNAUTHORIZED_RESPONSE } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { AvailableCompositorSchema, HealthSchema, HostInfoSchema, RuntimeStatusSchema } from "./schemas.ts";

const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });

export function registerHostRoutes(api: ApiBuilder, deps: MgmtDeps): void {
  api.add(
    "open",
    createRoute({
      method: "get",
      path: "/api/v1/health",
      tags: ["host"],
      summary: "Liveness probe",
      description: "Always available without authentication.",
      operationId: "getHealth",
      responses: { 200: { description: "Host is up", content: json(HealthSchema) } },
    }),
    (c) => c.json(deps.health(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/host",
      tags: ["host"],
      summary: "Host identity and capabilities",
      operationId: "getHostInfo",
      responses: {
        200: { description: "Host identity, versions, codecs, and port map", content: json(HostInfoSchema) },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(deps.hostInfo(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/status",
      tags: ["host"],
      summary: "Live host status",
      operationId: "getStatus",
      responses: {
        200: {
          description: "Streaming/pairing state and the active session, if any",
          content: json(RuntimeStatusSchema),
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(deps.status(), 200),
  );

  api.add(
    "token",
    createRoute({
      method: "get",
      path: "/api/v1/compositors",
      tags: ["host"],
      summary: "Available compositor backends",
      description: "Lists every backend the host knows how to drive, flags which are usable right now, " +
        "and marks the one an unspecified (`Auto`) client request resolves to.",
      operationId: "listCompositors",
      responses: {
        200: {
          description: "Compositor backends with availability + the auto-detected default",
          content: json(z.array(AvailableCompositorSchema)),
        },
        ...UNAUTHORIZED_RESPONSE,
      },
    }),
    (c) => c.json(deps.compositors(), 200),
  );
}
