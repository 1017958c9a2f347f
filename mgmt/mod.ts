/** The management API: app factory, server edge, schemas and the dependency interfaces. */
export { createMgmtApp, serializeOpenApi } from "./app.ts";
export type { MgmtApp, MgmtAppOptions } from "./app.ts";
export type { GameStreamControl, MgmtDeps, NativeControl } from "./deps.ts";
export { startMgmtServer } from "./server.ts";
export type { MgmtServer, MgmtServerOptions } from "./server.ts";
export type * from "./schemas.ts";
