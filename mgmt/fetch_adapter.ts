/**
 * Serves a fetch handler (`(Request) => Response`, e.g. Hono's `app.fetch`) from a node:http / node:https server.
 * The management API runs on node:http rather than `Deno.serve` because only node's server exposes each
 * connection (the `'connection'` event), which the connection caps and timeouts need (docs/architecture.md,
 * "Listener defences").
 */
import type http from "node:http";
import type { Logger } from "../host/log.ts";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

const BODYLESS_METHODS = new Set(["GET", "HEAD"]);
/** A Host header is a DNS name or IP literal with an optional port — anything else could rewrite the URL path. */
const HOST_HEADER = /^(?:[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** The request cannot become a fetch `Request` (bad Host header, header value fetch refuses): a 400. */
export class BadRequestError extends Error {
  override name = "BadRequestError";
}

/** The request body as a web stream that reads from `req` only as fast as the handler consumes it. */
function bodyStream(req: http.IncomingMessage): ReadableStream<Uint8Array> {
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.on("data", (chunk: Uint8Array) => {
        if (cancelled) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once("end", () => controller.close());
      req.once("error", (error) => controller.error(error));
      req.once("aborted", () => controller.error(new Error("client aborted the request")));
    },
    pull() {
      req.resume();
    },
    cancel() {
      // The handler gave up on the body (e.g. over the size limit): stop taking it, but keep the socket so
      // the answer reaches the client; the listener drains and closes after answering (lingerThenClose).
      cancelled = true;
      req.pause();
    },
  }, { highWaterMark: 4 });
}

export function toFetchRequest(req: http.IncomingMessage, scheme: "http" | "https"): Request {
  const socket = req.socket;
  const fallbackHost = socket.localAddress?.includes(":")
    ? `[${socket.localAddress}]:${socket.localPort}`
    : `${socket.localAddress}:${socket.localPort}`;
  const path = req.url?.startsWith("/") ? req.url : "/";
  const host = req.headers.host ?? fallbackHost;
  if (!HOST_HEADER.test(host)) throw new BadRequestError("malformed Host header");
  let url: URL;
  const headers = new Headers();
  try {
    url = new URL(`${scheme}://${host}${path}`);
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
    }
  } catch (error) {
    throw new BadRequestError(`malformed request: ${(error as Error).message}`);
  }
  const method = req.method ?? "GET";
  const abort = new AbortController();
  // Aborts the handler when the client goes away mid-request; removed when the request ends, so a keep-alive
  // connection does not gather one listener per request.
  const onClose = () => abort.abort();
  req.socket.once("close", onClose);
  req.once("close", () => req.socket.off("close", onClose));
  return new Request(url, {
    method,
    headers,
    body: BODYLESS_METHODS.has(method) ? undefined : bodyStream(req),
    signal: abort.signal,
    // @ts-ignore: `duplex` is required by fetch for a streamed request body but missing from RequestInit
    duplex: "half",
  });
}

/**
 * How long the rest of a refused body is read and thrown away before the connection is destroyed. Closing
 * with unread bytes in the kernel's receive buffer sends a reset, and a reset makes the client's kernel drop
 * the answer it has not read yet, so the client would never see its 413; 2 s lets a client that stops
 * sending on the answer read it, while nothing is kept (the bytes are discarded as they arrive).
 */
const LINGER_MS = 2_000;

function lingerThenClose(req: http.IncomingMessage): void {
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  req.on("data", () => {/* discarded */});
  req.once("end", () => {
    clearTimeout(timer);
    req.socket.destroy();
  });
  req.once("close", () => clearTimeout(timer));
  req.resume();
}

function isStream(response: Response): boolean {
  return (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
}

async function writeResponse(res: http.ServerResponse, response: Response, method: string): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of response.headers) if (name !== "set-cookie") headers[name] = value;
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  if (response.body && method !== "HEAD" && !isStream(response)) {
    // API answers are small JSON documents: send them whole with a Content-Length (as Deno.serve did), so
    // simple clients need no chunked decoding; only event streams go out chunked.
    const bytes = new Uint8Array(await response.arrayBuffer());
    headers["content-length"] = String(bytes.byteLength);
    res.writeHead(response.status, response.statusText, headers);
    res.end(bytes);
    return;
  }
  res.writeHead(response.status, response.statusText, headers);
  if (!response.body || method === "HEAD") {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) return;
      if (!res.write(value)) await new Promise((resolve) => res.once("drain", resolve));
    }
    res.end();
  } finally {
    reader.releaseLock();
  }
}

/**
 * A node `'request'` listener that answers through `fetch`; a request fetch cannot represent is a 400 and a
 * handler failure a 500, both in the API's `{"error": …}` envelope.
 */
export function fetchRequestListener(
  fetch: FetchHandler,
  scheme: "http" | "https",
  log: Logger,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    (async () => {
      const method = req.method ?? "GET";
      let response: Response;
      try {
        response = await fetch(toFetchRequest(req, scheme));
      } catch (error) {
        if (error instanceof BadRequestError) {
          response = Response.json({ error: error.message }, { status: 400 });
        } else {
          log.error("management request failed", { error: (error as Error).message });
          response = Response.json({ error: "internal error" }, { status: 500 });
        }
      }
      // Answered before the body was read (413): close afterwards, but drain first (see lingerThenClose).
      const unread = !req.complete;
      if (unread) res.setHeader("connection", "close");
      await writeResponse(res, response, method);
      if (unread) lingerThenClose(req);
    })().catch((error) => {
      log.debug("management response aborted", { error: (error as Error).message });
      res.destroy();
    });
  };
}
