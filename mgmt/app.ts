/**
 * `createMgmtApp(deps)`: the whole management API as a Hono app, testable with `app.request()`.
 * The OpenAPI 3.1 document is generated from the same route definitions that serve requests.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { ApiBuilder } from "./api_builder.ts";
import type { AuthPolicy } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { registerHostRoutes } from "./host_routes.ts";
import { registerClientRoutes } from "./clients_routes.ts";
import { registerPairingRoutes } from "./pairing_routes.ts";
import { registerNativeRoutes } from "./native_routes.ts";
import { registerSessionRoutes } from "./session_routes.ts";
import { VERSION } from "../host/version.ts";

export interface MgmtApp {
  app: OpenAPIHono;
  routes(): { method: string; path: string; auth: AuthPolicy }[];
  openApiDocument(): Record<string, unknown>;
}

const TAGS = [
  { name: "host", description: "Host identity, capabilities, and liveness" },
  { name: "clients", description: "Paired Moonlight client management" },
  {
    name: "pairing",
    description: "Pairing PIN delivery (the out-of-band half of the GameStream pairing handshake)",
  },
  {
    name: "native",
    description: "Native punktfunk/1 pairing: arm a window, display the host PIN, manage paired devices",
  },
  { name: "session", description: "Active streaming session control" },
];

export function createMgmtApp(deps: MgmtDeps): MgmtApp {
  const api = new ApiBuilder(deps.token, deps.log);
  registerHostRoutes(api, deps);
  registerClientRoutes(api, deps);
  registerPairingRoutes(api, deps);
  registerNativeRoutes(api, deps);
  registerSessionRoutes(api, deps);

  api.app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
  });
  const openApiDocument = () =>
    api.app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "punktfunk management API",
        description: "Control-plane API for managing a punktfunk streaming host: host capabilities, " +
          "runtime status, paired clients, the pairing PIN flow, and session control. Authentication: " +
          "HTTP bearer token, enforced on every route except `/api/v1/health` and this document when " +
          "the host is started with a management token (mandatory for non-loopback binds).",
        // 3.1 allows an SPDX identifier; the 3.0-typed builder does not know the field.
        license: { name: "MIT OR Apache-2.0", identifier: "MIT OR Apache-2.0" } as { name: string },
        version: VERSION,
      },
      security: [{ bearerAuth: [] }],
      tags: TAGS,
    }) as unknown as Record<string, unknown>;

  api.addPlainGet("open", "/api/v1/openapi.json", (c) => c.json(openApiDocument()));
  return { app: api.app, routes: () => api.routes(), openApiDocument };
}

/** The document as checked in at `api/openapi.json` and printed by `punktfunk openapi`. */
export function serializeOpenApi(document: Record<string, unknown>): string {
  return JSON.stringify(document, null, 2) + "\n";
}
