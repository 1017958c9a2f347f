/**
 * Route registration with an explicit auth decision per operation, the `{"error": ...}` envelope
 * for every non-2xx answer (404, 405, 415, 400, 422, 500 included), and the bearer-token check.
 */
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { RouteConfig, RouteHandler } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { createHash, timingSafeEqual } from "node:crypto";
import { ApiErrorSchema } from "./schemas.ts";
import type { Logger } from "../host/log.ts";

/** "open": no credential ever; "token": the bearer token whenever one is configured. */
export type AuthPolicy = "open" | "token";

interface RoutePattern {
  method: string;
  path: string;
  regex: RegExp;
  auth: AuthPolicy;
}

export const errorContent = {
  "application/json": { schema: ApiErrorSchema },
} as const;

export const UNAUTHORIZED_RESPONSE = {
  401: { description: "Missing or invalid bearer token", content: errorContent },
} as const;

export function errorBody(message: string): { error: string } {
  return { error: message };
}

function pathRegex(openApiPath: string): RegExp {
  const escaped = openApiPath.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+");
  return new RegExp(`^${escaped}/?$`);
}

/** Equal-time comparison of a presented token with the configured one (hashing equalizes length). */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

const requireJsonBody: MiddlewareHandler = async (c, next) => {
  const contentType = c.req.header("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(contentType)) {
    return c.json(errorBody("request body must be application/json"), 415);
  }
  try {
    await c.req.json();
  } catch {
    return c.json(errorBody("request body is not valid JSON"), 400);
  }
  await next();
};

export class ApiBuilder {
  readonly app: OpenAPIHono;
  readonly #patterns: RoutePattern[] = [];

  /** `guards` run before auth and routing, in order (Host/Origin/body checks from `app.ts`). */
  constructor(readonly token: string | undefined, readonly log: Logger, guards: MiddlewareHandler[] = []) {
    this.app = new OpenAPIHono({
      defaultHook: (result, c) => {
        if (result.success) return;
        const issues = result.error.issues.map((issue) => {
          const where = issue.path.length > 0 ? issue.path.join(".") : "body";
          return `${where}: ${issue.message}`;
        });
        const status = result.target === "json" ? 422 : 400;
        return c.json(errorBody(`invalid ${result.target}: ${issues.join("; ")}`), status);
      },
    });
    for (const guard of guards) this.app.use("*", guard);
    this.app.use("*", this.#authMiddleware());
    this.app.notFound((c) => this.#notFoundOrWrongMethod(c));
    this.app.onError((error, c) => {
      if (error instanceof HTTPException) {
        return c.json(errorBody(error.message || "request failed"), error.status);
      }
      this.log.error("management API handler failed", { path: c.req.path, error: String(error) });
      return c.json(errorBody("internal error"), 500);
    });
  }

  /** Registers an OpenAPI route; `auth` is required so no route lacks a decision. */
  add<R extends RouteConfig>(auth: AuthPolicy, route: R, handler: RouteHandler<R>): void {
    const hasJsonBody = route.request?.body !== undefined;
    const full = createRoute({
      ...route,
      ...(auth === "open" ? { security: [{}] } : {}),
      middleware: hasJsonBody ? [requireJsonBody] : undefined,
    });
    this.#patterns.push({
      method: route.method.toUpperCase(),
      path: route.path,
      regex: pathRegex(route.path),
      auth,
    });
    // deno-lint-ignore no-explicit-any
    this.app.openapi(full as any, handler as any);
  }

  /** A plain (non-OpenAPI) GET route, such as the spec document itself. */
  addPlainGet(auth: AuthPolicy, path: string, handler: (c: Context) => Response | Promise<Response>): void {
    this.#patterns.push({ method: "GET", path, regex: pathRegex(path), auth });
    this.app.get(path, handler);
  }

  /** Every registered operation and its auth decision, for tests and the route listing. */
  routes(): { method: string; path: string; auth: AuthPolicy }[] {
    return this.#patterns.map(({ method, path, auth }) => ({ method, path, auth }));
  }

  policyFor(method: string, path: string): AuthPolicy | undefined {
    const upper = method === "HEAD" ? "GET" : method.toUpperCase();
    return this.#patterns.find((p) => p.method === upper && p.regex.test(path))?.auth;
  }

  #authMiddleware(): MiddlewareHandler {
    return async (c, next) => {
      // Unknown paths and methods default to "token": their 404/405 is no business of strangers.
      if (this.token === undefined || this.policyFor(c.req.method, c.req.path) === "open") {
        return await next();
      }
      const presented = bearerToken(c.req.header("authorization"));
      if (presented === undefined || !tokenMatches(presented, this.token)) {
        c.header("WWW-Authenticate", 'Bearer realm="punktfunk"');
        return c.json(errorBody("missing or invalid bearer token"), 401);
      }
      await next();
    };
  }

  #notFoundOrWrongMethod(c: Context): Response {
    const allowed = this.#patterns.filter((p) => p.regex.test(c.req.path)).map((p) => p.method);
    if (allowed.length > 0) {
      c.header("Allow", [...new Set(allowed)].join(", "));
      return c.json(errorBody(`method ${c.req.method} not allowed on ${c.req.path}`), 405);
    }
    return c.json(errorBody(`no such route: ${c.req.path}`), 404);
  }
}
