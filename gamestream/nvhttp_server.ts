/**
 * nvhttp transport (§2): plain HTTP on the base port and mutual-TLS HTTPS (`node:https`, the only Deno TLS
 * server that shows the client certificate). This module does IO and the certificate gate only; what each
 * path answers is the caller's `handle` function.
 *
 * The gate is stricter than Sunshine's where it matters: over HTTPS, a request whose certificate is not
 * pinned (or that has none) gets the 401 document on every path, before any handler runs.
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { isEndpointServed, parseQuery, QueryError, renderError, renderUnauthorized } from "./nvhttp_xml.ts";
import type { QueryParams } from "./nvhttp_xml.ts";
import type { Logger } from "../host/log.ts";
import { defenceFromEnv, guardNodeServer } from "../host/guarded_listener.ts";
import type { ConnectionCounters } from "../host/connection_guard.ts";

export interface NvHttpRequest {
  https: boolean;
  /** Path without the query, e.g. "/serverinfo". */
  path: string;
  query: QueryParams;
  sourceIp: string;
  /** Local address of this TCP connection (for `LocalIP` and `sessionUrl0`). */
  localAddress: string;
  /** SHA-256 hex (lower case) of the client certificate's DER; HTTPS with a certificate only. */
  clientFingerprint: string | null;
  /** True only over HTTPS with a pinned certificate (every routed HTTPS request). */
  clientPaired: boolean;
  /** Aborted when the connection closes before the reply is written (a held pairing phase 1 ends then). */
  closed: AbortSignal;
}

export interface NvHttpReply {
  status: number;
  body: string | Uint8Array;
  contentType?: string;
}

export interface NvHttpServerOptions {
  bind: string;
  httpPort: number;
  httpsPort: number;
  certPem: string;
  keyPem: string;
  isPaired(fingerprint: string): boolean;
  handle(request: NvHttpRequest): Promise<NvHttpReply> | NvHttpReply;
  log: Logger;
}

export interface NvHttpServers {
  httpPort: number;
  httpsPort: number;
  /** Admission and timeout counters of the two listeners (refused, evicted, timed out …). */
  connectionCounters(): { http: ConnectionCounters; https: ConnectionCounters };
  close(): Promise<void>;
}

/** Decides what an arriving request gets before a handler sees it (pure, for tests). */
export function gateRequest(
  request: Omit<NvHttpRequest, "query" | "clientPaired" | "closed"> & { clientPaired: boolean },
  target: string,
): { ok: true; query: QueryParams } | { ok: false; reply: NvHttpReply } {
  if (request.https && !request.clientPaired) {
    return { ok: false, reply: { status: 200, body: renderUnauthorized(request.path) } };
  }
  if (!isEndpointServed(request.path, request.https)) {
    return { ok: false, reply: { status: 404, body: renderError(404, "Not found") } };
  }
  try {
    return { ok: true, query: parseQuery(target) };
  } catch (error) {
    if (!(error instanceof QueryError)) throw error;
    return { ok: false, reply: { status: 400, body: renderError(400, error.message) } };
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function stripV4Mapped(address: string | undefined): string {
  if (!address) return "";
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address;
}

function listen(server: http.Server, port: number, bind: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, bind, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

export async function startNvHttpServers(options: NvHttpServerOptions): Promise<NvHttpServers> {
  const { log } = options;
  const serve = (overHttps: boolean) => async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const target = req.url ?? "/";
    const path = target.split("?")[0];
    const closed = new AbortController();
    res.once("close", () => {
      if (!res.writableEnded) closed.abort();
    });
    let reply: NvHttpReply;
    try {
      let clientFingerprint: string | null = null;
      if (overHttps) {
        const raw = (req.socket as unknown as { getPeerCertificate?: () => { raw?: Uint8Array } })
          .getPeerCertificate?.()?.raw;
        if (raw && raw.length > 0) clientFingerprint = await sha256Hex(new Uint8Array(raw));
      }
      const base = {
        https: overHttps,
        path,
        sourceIp: stripV4Mapped(req.socket.remoteAddress),
        localAddress: stripV4Mapped(req.socket.localAddress),
        clientFingerprint,
        clientPaired: clientFingerprint !== null && options.isPaired(clientFingerprint),
      };
      const gate = req.method === "GET"
        ? gateRequest(base, target)
        : { ok: false as const, reply: { status: 405, body: renderError(405, "Only GET is served") } };
      reply = gate.ok
        ? await options.handle({ ...base, query: gate.query, closed: closed.signal })
        : gate.reply;
      log.debug("nvhttp", { https: overHttps, path, status: reply.status, source: base.sourceIp });
    } catch (error) {
      log.error("nvhttp handler failed", { path, error: (error as Error).message });
      reply = { status: 500, body: renderError(500, "Internal error") };
    }
    if (res.destroyed) return;
    // Moonlight must not reuse connections ("GFE will puke"); Sunshine closes after every reply.
    res.writeHead(reply.status, {
      "Content-Type": reply.contentType ?? "application/xml",
      "Connection": "close",
    });
    res.end(reply.body);
  };

  const httpDefence = defenceFromEnv("nvhttpHttp");
  const httpsDefence = defenceFromEnv("nvhttpHttps");
  const httpServer = http.createServer(serve(false));
  const httpsServer = https.createServer({
    key: options.keyPem,
    cert: options.certPem,
    requestCert: true,
    // Self-signed client certificates: the pinned-fingerprint gate above is the real check (§2.3).
    rejectUnauthorized: false,
    handshakeTimeout: httpsDefence.timeouts.handshakeMs,
  }, serve(true));
  // Caps and header/idle timeouts are ours (host/guarded_listener.ts): Deno's node:http ignores headersTimeout,
  // and a socket inactivity timeout would cut pairing phase 1, which waits for the PIN with a request in flight.
  httpServer.requestTimeout = 0;
  const httpGuard = guardNodeServer(httpServer, { name: "nvhttp-http", defence: httpDefence, log });
  const httpsGuard = guardNodeServer(httpsServer as unknown as http.Server, {
    name: "nvhttp-https",
    defence: httpsDefence,
    log,
  });
  const httpPort = await listen(httpServer, options.httpPort, options.bind);
  let httpsPort: number;
  try {
    httpsPort = await listen(httpsServer as unknown as http.Server, options.httpsPort, options.bind);
  } catch (error) {
    await close(httpServer);
    throw error;
  }
  return {
    httpPort,
    httpsPort,
    connectionCounters: () => ({ http: { ...httpGuard.counters }, https: { ...httpsGuard.counters } }),
    close: async () => {
      await Promise.all([close(httpServer), close(httpsServer as unknown as http.Server)]);
    },
  };
}
