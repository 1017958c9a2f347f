/**
 * The IO edge of `connection_guard.ts`: applies a listener's caps and timeouts to a node:http / node:https server
 * or to a `Deno.Listener` accept loop.
 *
 * Measured with Deno 2.9.6 (node:http inside Deno): `headersTimeout` and `requestTimeout` are NOT enforced (an
 * idle or half-sent-head connection stays open), `server.timeout` is socket inactivity and would cut a pairing
 * request that waits for its PIN, `maxConnections` and the TLS `handshakeTimeout` option work, the `'connection'`
 * event delivers the raw TCP socket (also for node:https, before the handshake). So the timers here are our own,
 * per connection, driven by `'connection'` / `'request'` / the response's end.
 */
import type http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { ConnectionGuard, listenerDefence } from "./connection_guard.ts";
import type { ConnectionTicket, ListenerDefence, ListenerName } from "./connection_guard.ts";
import type { Logger } from "./log.ts";

/** The defence of `name`, tightened by the test-only `PUNKTFUNK_LISTENER_OVERRIDES` when it is set. */
export function defenceFromEnv(name: ListenerName): ListenerDefence {
  let overrides: string | undefined;
  try {
    overrides = Deno.env.get("PUNKTFUNK_LISTENER_OVERRIDES");
  } catch { /* no env permission: defaults */ }
  return listenerDefence(name, overrides);
}

export function stripV4Mapped(address: string | undefined): string {
  if (!address) return "";
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address;
}

interface Tracked {
  ticket: ConnectionTicket;
  socket: net.Socket;
  /** The TLS socket riding on `socket` (HTTPS), once a request arrived on it. */
  upper?: net.Socket;
  timer?: ReturnType<typeof setTimeout>;
}

export interface GuardedServerOptions {
  name: string;
  defence: ListenerDefence;
  log: Logger;
  /** Accept watchdog period (0 = off) and how long a probe may wait to be accepted; see `ACCEPT_WATCHDOG_MS`. */
  watchdogMs?: number;
  probeTimeoutMs?: number;
}

/**
 * Deno's node:net listener stops accepting for good after one failed accept (EMFILE), without any event
 * (measured, Deno 2.9.6); listening again on the same port revives it. Every 10 s without a connection, the
 * watchdog connects to the listener itself; a probe not accepted within 2 s means the listener is dead.
 */
export const ACCEPT_WATCHDOG_MS = 10_000;
const ACCEPT_PROBE_TIMEOUT_MS = 2_000;

/** Caps and timeouts on a node:http or node:https server; returns the guard (its counters) for status and tests. */
export function guardNodeServer(server: http.Server, options: GuardedServerOptions): ConnectionGuard {
  const { defence, log, name } = options;
  const { timeouts } = defence;
  const guard = new ConnectionGuard(defence.limits);
  const byKey = new Map<string, Tracked>();
  const byTicket = new Map<number, Tracked>();
  const keyOf = (socket: net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

  const destroy = (entry: Tracked) => {
    clearTimeout(entry.timer);
    entry.upper?.destroy();
    entry.socket.destroy();
  };
  const arm = (entry: Tracked, ms: number, why: string, stillDue: () => boolean = () => true) => {
    clearTimeout(entry.timer);
    if (ms <= 0) return;
    entry.timer = setTimeout(() => {
      if (!stillDue()) return;
      guard.countTimeout();
      log.debug("connection timed out", { listener: name, why, source: entry.ticket.source });
      destroy(entry);
    }, ms);
  };

  const probeTimeoutMs = options.probeTimeoutMs ?? ACCEPT_PROBE_TIMEOUT_MS;
  watchAccepting(server, name, log, options.watchdogMs ?? ACCEPT_WATCHDOG_MS, probeTimeoutMs, () => {
    guard.countAcceptError();
  });
  server.on("connection", (socket: net.Socket) => {
    // A reset from the peer must end this connection only, never surface as an unhandled error.
    socket.on("error", () => {});
    const admission = guard.admit(stripV4Mapped(socket.remoteAddress), Date.now());
    if (!admission.admitted) {
      log.debug("connection refused", {
        listener: name,
        reason: admission.reason,
        source: socket.remoteAddress,
      });
      socket.destroy();
      return;
    }
    if (admission.evict) {
      const evicted = byTicket.get(admission.evict.id);
      if (evicted) {
        log.debug("idle connection evicted", { listener: name, source: evicted.ticket.source });
        destroy(evicted);
      }
    }
    const entry: Tracked = { ticket: admission.ticket, socket };
    const key = keyOf(socket);
    byKey.set(key, entry);
    byTicket.set(entry.ticket.id, entry);
    arm(entry, timeouts.headersMs, "headers");
    socket.once("close", () => {
      clearTimeout(entry.timer);
      guard.release(entry.ticket);
      if (byKey.get(key) === entry) byKey.delete(key);
      byTicket.delete(entry.ticket.id);
    });
  });

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const entry = byKey.get(keyOf(req.socket));
    if (!entry) return;
    if (req.socket !== entry.socket && entry.upper !== req.socket) {
      // Once per TLS socket (not per request: keep-alive would pile up listeners).
      entry.upper = req.socket;
      req.socket.on("error", () => {});
    }
    // A request being answered is never idle: a pairing request may wait minutes for its PIN. A request
    // still sending its body is not busy yet, so a client trickling a body holds nothing that a newcomer
    // cannot evict (the body timeout ends it anyway).
    let answered = false;
    const markBusy = () => {
      if (!answered) guard.setBusy(entry.ticket, true);
    };
    const hasBody = req.headers["transfer-encoding"] !== undefined ||
      Number(req.headers["content-length"] ?? 0) > 0;
    if (hasBody) req.once("end", markBusy);
    else markBusy();
    arm(entry, timeouts.requestBodyMs, "request body", () => !req.complete && !res.writableEnded);
    res.once("close", () => {
      answered = true;
      req.off("end", markBusy);
      guard.setBusy(entry.ticket, false);
      arm(entry, timeouts.idleMs, "idle");
    });
  });

  // After listen, node:net reports accept failures here; without a listener they would be thrown.
  server.on("error", (error: Error) => {
    guard.countAcceptError();
    log.warn("listener error", { listener: name, error: error.message });
  });
  server.on("tlsClientError", () => {/* handshake failures and timeouts: the socket is already gone */});
  // What node does without a listener (400, or 431 for an oversized head), minus any chance of a throw.
  server.on("clientError", (error: Error & { code?: string }, socket: net.Socket) => {
    // Only an HTTP parse error gets an answer; anything else (e.g. the TLS handshake timeout) just closes.
    if (!error.code?.startsWith("HPE_") || !socket.writable) return socket.destroy();
    const status = error.code === "HPE_HEADER_OVERFLOW"
      ? "431 Request Header Fields Too Large"
      : "400 Bad Request";
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
  });
  return guard;
}

/** The accept watchdog of one node server (see `ACCEPT_WATCHDOG_MS`). */
function watchAccepting(
  server: http.Server,
  name: string,
  log: Logger,
  periodMs: number,
  probeTimeoutMs: number,
  onDead: () => void,
): void {
  let accepted = 0;
  let acceptedAtLastTick = 0;
  let bound: AddressInfo | null = null;
  let relistening = false;
  // The owner's close() ends the watchdog for good (it must never re-open a listener shut down meanwhile).
  let closedByOwner = false;
  const closeListener = server.close.bind(server);
  server.close = ((callback?: (error?: Error) => void) => {
    closedByOwner = true;
    return closeListener(callback);
  }) as typeof server.close;
  server.on("listening", () => {
    bound = server.address() as AddressInfo;
    relistening = false;
  });
  server.on("connection", () => accepted++);
  const relisten = () => {
    if (!bound || closedByOwner) return;
    relistening = true;
    const { port, address } = bound;
    closeListener();
    server.listen(port, address);
  };
  // Counts accepts rather than matching the probe's socket: the server may see it before the probe's own
  // 'connect' fires. The probe passes the guard like any loopback client and is closed right after.
  const probe = () => {
    if (!bound) return;
    const host = bound.address === "0.0.0.0" ? "127.0.0.1" : bound.address === "::" ? "::1" : bound.address;
    const before = accepted;
    let conclusive = true;
    const socket = net.connect({ host, port: bound.port });
    socket.on("error", () => conclusive = false); // e.g. out of descriptors ourselves: decide next time
    setTimeout(() => {
      socket.destroy();
      if (accepted !== before) return log.trace("accept probe answered", { listener: name });
      if (!conclusive || closedByOwner || relistening || !server.listening) return;
      onDead();
      log.error("listener stopped accepting; listening again", { listener: name, port: bound?.port });
      relisten();
    }, probeTimeoutMs);
  };
  if (periodMs <= 0) return;
  const timer = setInterval(() => {
    if (closedByOwner) return clearInterval(timer);
    if (relistening) return relisten(); // the last attempt failed (logged as a listener error): again
    if (!server.listening) return; // not yet listening
    if (accepted === acceptedAtLastTick) probe();
    acceptedAtLastTick = accepted;
  }, periodMs);
  Deno.unrefTimer(timer);
}

export interface GuardedAcceptOptions {
  name: string;
  defence: ListenerDefence;
  log: Logger;
  /** Serves one admitted connection; the guard releases it when the promise settles. */
  serve(conn: Deno.Conn): Promise<void>;
  /**
   * Whether connections from `source` are protected from eviction for their whole life (RTSP: the session
   * owner's, so a crowd of strangers' connections can never cut the owner's handshake).
   */
  protect?(source: string): boolean;
  /** Wait after a failed accept (EMFILE …) before the next; doubles up to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** After a failed accept, retry after 50 ms, doubling to 1 s: frees the loop for closers without spinning. */
const ACCEPT_BACKOFF_MIN_MS = 50;
const ACCEPT_BACKOFF_MAX_MS = 1_000;

/**
 * Accept loop for a `Deno.Listener` with caps and a whole-connection deadline of `headersMs` (the protocols
 * served this way answer one request per connection at once). A failed accept is logged, counted and retried
 * after a short back-off; only closing the listener ends the loop.
 */
export function runGuardedAcceptLoop(
  listener: Deno.Listener,
  options: GuardedAcceptOptions,
): ConnectionGuard {
  const { defence, log, name } = options;
  const guard = new ConnectionGuard(defence.limits);
  const open = new Map<number, Deno.Conn>();
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  (async () => {
    let backoff = 0;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 0;
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) return;
        guard.countAcceptError();
        backoff = Math.min(
          Math.max(backoff * 2, options.minBackoffMs ?? ACCEPT_BACKOFF_MIN_MS),
          options.maxBackoffMs ?? ACCEPT_BACKOFF_MAX_MS,
        );
        log.warn("accept failed; retrying", {
          listener: name,
          error: (error as Error).message,
          backoff_ms: backoff,
        });
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      const source = stripV4Mapped((conn.remoteAddr as Deno.NetAddr).hostname);
      const admission = guard.admit(source, Date.now());
      if (!admission.admitted) {
        log.debug("connection refused", { listener: name, reason: admission.reason, source });
        closeQuietly(conn);
        continue;
      }
      if (admission.evict) {
        const evicted = open.get(admission.evict.id);
        if (evicted) closeQuietly(evicted);
      }
      const ticket = admission.ticket;
      if (options.protect?.(source)) guard.setBusy(ticket, true);
      open.set(ticket.id, conn);
      const deadline = setTimeout(() => {
        guard.countTimeout();
        log.debug("connection timed out", { listener: name, source });
        closeQuietly(conn);
      }, defence.timeouts.headersMs);
      options.serve(conn).catch((error) => {
        log.debug("connection failed", { listener: name, error: (error as Error).message });
      }).finally(() => {
        clearTimeout(deadline);
        closeQuietly(conn);
        open.delete(ticket.id);
        guard.release(ticket);
      });
    }
  })();
  return guard;
}
