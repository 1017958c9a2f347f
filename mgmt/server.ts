/**
 * The management API's socket edge. Plain HTTP is allowed only on loopback; any other bind needs
 * a token and is served over HTTPS with the host's TLS certificate.
 */
import { isLoopbackHost } from "../host/config.ts";
import type { Logger } from "../host/log.ts";

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
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    const onListen = (addr: Deno.NetAddr) => {
      const shownHost = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      const url = `${scheme}://${shownHost}:${addr.port}`;
      options.log.info("management API listening", { url, auth: options.token ? "bearer" : "none" });
      resolve({ url, port: addr.port, shutdown: () => server.shutdown() });
    };
    try {
      const base = { hostname: options.host, port: options.port, onListen };
      server = scheme === "https"
        ? Deno.serve({ ...base, cert: options.tls!.certPem, key: options.tls!.keyPem }, options.fetch)
        : Deno.serve(base, options.fetch);
    } catch (error) {
      reject(
        new MgmtBindError(`cannot bind the management API on ${options.host}:${options.port}: ${error}`),
      );
    }
  });
}
