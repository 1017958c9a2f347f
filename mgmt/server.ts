/**
 * The management API's socket edge. Plain HTTP is allowed only on loopback; any other bind needs
 * a token and is served over HTTPS with the host's TLS certificate.
 *
 * Served by node:http / node:https (not `Deno.serve`, which exposes no connection to cap or time out), with
 * the caps and timeouts of `host/guarded_listener.ts`.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { isLoopbackHost } from "../host/config.ts";
import type { Logger } from "../host/log.ts";
import { defenceFromEnv, guardNodeServer } from "../host/guarded_listener.ts";
import type { ConnectionCounters } from "../host/connection_guard.ts";
import { fetchRequestListener } from "./fetch_adapter.ts";

export interface MgmtServerOptions {
  host: string;
  port: number;
  token?: string;
  tls?: { certPem: string; keyPem: string };
  fetch: (request: Request) => Response | Promise<Response>;
  log: Logger;
}

export interface MgmtServer {
  url: string;
  port: number;
  shutdown(): Promise<void>;
  /** Serves `tls` to every new HTTPS connection from now on (rotation without a restart); no-op over HTTP. */
  setTls(tls: { certPem: string; keyPem: string }): void;
  /** Admission and timeout counters of the listener (refused, evicted, timed out …). */
  connectionCounters(): ConnectionCounters;
}

export class MgmtBindError extends Error {
  override name = "MgmtBindError";
}

/** Refuses an off-loopback bind without a token before any socket opens. */
export function checkBindPolicy(host: string, token: string | undefined): "http" | "https" {
  if (isLoopbackHost(host)) return "http";
  if (!token) {
    throw new MgmtBindError(
      `refusing to serve the management API on ${host} without a token. Set one with ` +
        `--mgmt-token, PUNKTFUNK_MGMT_TOKEN, or a token file (--mgmt-token-file or ` +
        `<config dir>/mgmt-token), e.g. \`openssl rand -hex 32 > ~/.config/punktfunk/mgmt-token\`; ` +
        `or bind to 127.0.0.1.`,
    );
  }
  return "https";
}

export function startMgmtServer(options: MgmtServerOptions): Promise<MgmtServer> {
  const scheme = checkBindPolicy(options.host, options.token);
  if (scheme === "https" && !options.tls) throw new MgmtBindError("HTTPS bind needs the host certificate");
  const defence = defenceFromEnv("mgmt");
  const listener = fetchRequestListener(options.fetch, scheme, options.log);
  const server: http.Server = scheme === "https"
    ? https.createServer({
      cert: options.tls!.certPem,
      key: options.tls!.keyPem,
      handshakeTimeout: defence.timeouts.handshakeMs,
    }, listener) as unknown as http.Server
    : http.createServer(listener);
  const guard = guardNodeServer(server, { name: "mgmt", defence, log: options.log });
  return new Promise((resolve, reject) => {
    const onBindError = (error: Error) => {
      reject(
        new MgmtBindError(`cannot bind the management API on ${options.host}:${options.port}: ${error}`),
      );
    };
    server.once("error", onBindError);
    server.listen(options.port, options.host, () => {
      server.off("error", onBindError);
      const addr = server.address() as AddressInfo;
      const shownHost = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
      const url = `${scheme}://${shownHost}:${addr.port}`;
      options.log.info("management API listening", { url, auth: options.token ? "bearer" : "none" });
      resolve({
        url,
        port: addr.port,
        shutdown: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
        setTls: (tls) => {
          if (scheme !== "https") return;
          (server as unknown as https.Server).setSecureContext({ cert: tls.certPem, key: tls.keyPem });
        },
        connectionCounters: () => ({ ...guard.counters }),
      });
    });
  });
}
