/**
 * RTSP over TCP (§5.2): one request per connection, the reply, then close (the client reads until EOF).
 * Connections are accepted only while a launch is waiting for its handshake; otherwise they are closed at
 * once, as Sunshine does. The protocol itself is the pure `RtspSession` in rtsp.ts.
 */
import { RtspRequestParser, serializeResponse } from "./rtsp.ts";
import type { RtspSession, RtspSessionAction } from "./rtsp.ts";
import type { Logger } from "../host/log.ts";
import { defenceFromEnv, runGuardedAcceptLoop } from "../host/guarded_listener.ts";
import type { ConnectionCounters } from "../host/connection_guard.ts";

/** Moonlight waits 15 s for a reply; a client that has not sent a whole request in 10 s is gone. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface RtspServerOptions {
  bind: string;
  port: number;
  /** The handshake of the pending launch, or null when none (the connection is then closed). */
  session(): RtspSession | null;
  onActions(actions: RtspSessionAction[], session: RtspSession): void;
  log: Logger;
}

export interface RtspServer {
  port: number;
  /** Admission and timeout counters of the listener (refused, evicted, timed out, accept errors). */
  connectionCounters(): ConnectionCounters;
  close(): void;
}

async function readRequest(conn: Deno.Conn, parser: RtspRequestParser) {
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    const { requests, error } = parser.feed(buffer.subarray(0, n));
    if (error) throw error;
    if (requests.length > 0) return requests[0];
  }
}

async function serveConnection(conn: Deno.Conn, options: RtspServerOptions): Promise<void> {
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* already closed */ }
  }, REQUEST_TIMEOUT_MS);
  try {
    const session = options.session();
    if (session === null) return;
    const request = await readRequest(conn, new RtspRequestParser());
    if (request === null) return;
    const result = session.handle(request);
    options.log.debug("rtsp", { method: request.method, uri: request.uri, status: result.response.status });
    const bytes = serializeResponse(result.response);
    for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
    if (result.actions.length > 0) options.onActions(result.actions, session);
  } catch (error) {
    options.log.debug("rtsp connection dropped", { error: (error as Error).message });
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

export function startRtspServer(options: RtspServerOptions): RtspServer {
  const listener = Deno.listen({ hostname: options.bind, port: options.port, transport: "tcp" });
  // Caps, a whole-connection deadline and accept errors that never end the loop (host/guarded_listener.ts).
  const guard = runGuardedAcceptLoop(listener, {
    name: "rtsp",
    defence: defenceFromEnv("rtsp"),
    log: options.log,
    serve: (conn) => serveConnection(conn, options),
  });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connectionCounters: () => ({ ...guard.counters }),
    close: () => {
      try {
        listener.close();
      } catch { /* already closed */ }
    },
  };
}
