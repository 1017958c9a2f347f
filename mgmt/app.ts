/**
 * `createMgmtApp(deps)`: the whole management API as a Hono app, testable with `app.request()`.
 * The OpenAPI 3.1 document is generated from the same route definitions that serve requests.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { ApiBuilder, errorBody } from "./api_builder.ts";
import type { AuthPolicy } from "./api_builder.ts";
import type { MgmtDeps } from "./deps.ts";
import { registerHostRoutes } from "./host_routes.ts";
import { registerClientRoutes } from "./clients_routes.ts";
import { registerPairingRoutes } from "./pairing_routes.ts";
import { registerNativeRoutes } from "./native_routes.ts";
import { registerSessionRoutes } from "./session_routes.ts";
import { VERSION } from "../host/version.ts";
import { isLoggedOccurrence } from "../host/log.ts";
import type { Logger } from "../host/log.ts";
import {
  bodyTooLarge,
  buildHostAllowList,
  checkDeclaredLength,
  checkHostAndOrigin,
  MAX_BODY_BYTES,
} from "./request_guard.ts";
import type { GuardVerdict, HostAllowList, RefusalKind } from "./request_guard.ts";

export interface MgmtApp {
  app: OpenAPIHono;
  routes(): { method: string; path: string; auth: AuthPolicy }[];
  openApiDocument(): Record<string, unknown>;
  /** Requests refused before routing, by reason, since start. */
  refusals(): Record<RefusalKind, number>;
}

/** Where the API listens and which names it answers to (see `request_guard.ts`). */
export interface MgmtAppOptions {
  /** Default 127.0.0.1. */
  bindHost?: string;
  /** Default `Deno.hostname()`. */
  hostname?: string;
  /** Names the operator allowed (`--mgmt-allowed-host`, `mgmt_allowed_hosts`). */
  allowedHosts?: readonly string[];
  /** Default `Deno.networkInterfaces()`; used only for a wildcard bind. */
  interfaceAddresses?: readonly string[];
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

export function createMgmtApp(deps: MgmtDeps, options: MgmtAppOptions = {}): MgmtApp {
  const allowList = buildHostAllowList({
    bindHost: options.bindHost ?? "127.0.0.1",
    hostname: options.hostname ?? systemHostname(),
    configured: options.allowedHosts,
    interfaceAddresses: options.interfaceAddresses ?? interfaceAddresses(),
  });
  const refusals: Record<RefusalKind, number> = { host: 0, origin: 0, body_too_large: 0 };
  const api = new ApiBuilder(deps.token, deps.log, [requestGuard(allowList, refusals, deps.log)]);
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
  return { app: api.app, routes: () => api.routes(), openApiDocument, refusals: () => ({ ...refusals }) };
}

function systemHostname(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined; // no --allow-sys: only loopback names and configured ones
  }
}

function interfaceAddresses(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => i.address);
  } catch {
    return [];
  }
}

/**
 * Host/Origin check, then the body limit, before auth and routing. A declared Content-Length over
 * the limit is refused without reading a byte; a body of unknown length (chunked) is read and
 * counted, and the read is cancelled at the first byte over the limit.
 */
function requestGuard(
  allowList: HostAllowList,
  refusals: Record<RefusalKind, number>,
  log: Logger,
): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    let verdict: GuardVerdict = checkHostAndOrigin(allowList, {
      method: raw.method,
      url: raw.url,
      host: raw.headers.get("host"),
      origin: raw.headers.get("origin"),
    });
    if (verdict.allowed && raw.body !== null) {
      const declared = checkDeclaredLength(
        raw.headers.get("content-length"),
        raw.headers.get("transfer-encoding"),
      );
      if (declared === "stream") {
        let body: Uint8Array<ArrayBuffer> | undefined;
        try {
          body = await readBodyWithin(raw.body, MAX_BODY_BYTES);
        } catch {
          return c.json(errorBody("request body could not be read"), 400);
        }
        if (body === undefined) verdict = bodyTooLarge();
        else if (raw.method !== "GET" && raw.method !== "HEAD") c.req.raw = new Request(raw, { body });
      } else {
        verdict = declared;
      }
    }
    if (verdict.allowed) return await next();
    const count = ++refusals[verdict.kind];
    // A flood must not flood the log (each kind counted separately).
    if (isLoggedOccurrence(count)) {
      log.warn("management API refused a request", { reason: verdict.kind, count, detail: verdict.message });
    }
    return c.json(errorBody(verdict.message), verdict.status);
  };
}

/** The whole body, or undefined (and the stream cancelled) as soon as it exceeds `limit` bytes. */
export async function readBodyWithin(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel("request body too large").catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** The document as checked in at `api/openapi.json` and printed by `punktfunk openapi`. */
export function serializeOpenApi(document: Record<string, unknown>): string {
  return JSON.stringify(document, null, 2) + "\n";
}
