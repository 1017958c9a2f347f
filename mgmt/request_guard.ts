/**
 * Pure checks the management API runs on every request before auth and routing: the Host allow-list
 * (DNS rebinding), the Origin check for state-changing methods (cross-site requests) and the
 * declared body size. Strings in, a verdict out; the middleware in `app.ts` does the IO.
 *
 * Why a Host allow-list: a page on `http://evil.example:47990` whose name the attacker re-points to
 * 127.0.0.1 is same-origin with our API in the victim's browser and may read every answer. The
 * browser still sends `Host: evil.example:47990`, so refusing names that are not ours ends it.
 */

/**
 * Largest request body the API accepts. The largest legitimate body of any route is `SubmitPin`
 * with 16 digits (`{"pin":"0123456789012345"}`, 26 bytes) or `ArmNativePairing` (~20 bytes); 4 KiB
 * leaves room for whitespace and a few future fields while keeping an attacker's cost per request
 * at one small buffer.
 */
export const MAX_BODY_BYTES = 4096;

/** Longest Host header looked at: a DNS name is at most 253 bytes, plus `:65535`. */
export const MAX_HOST_HEADER_BYTES = 260;

/** Methods that change state; a cross-origin one is refused. */
const STATE_CHANGING_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A reg-name of letters, digits, `.`, `-` and `_`, or an IPv6 literal in brackets, then a port. */
const HOST_HEADER = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/;

export interface HostAllowListInput {
  /** The address the API is bound to (`127.0.0.1`, `::1`, `0.0.0.0`, a LAN address …). */
  bindHost: string;
  /** The machine's hostname; it and `<hostname>.local` (mDNS) are allowed. */
  hostname?: string;
  /** Names and addresses the operator allowed (`mgmt_allowed_hosts`). */
  configured?: readonly string[];
  /** The machine's interface addresses, allowed only when `bindHost` is a wildcard. */
  interfaceAddresses?: readonly string[];
}

/** Canonical host names (lower case, IPv6 in brackets, no trailing dot) the API answers to. */
export interface HostAllowList {
  readonly names: ReadonlySet<string>;
}

export type RefusalKind = "host" | "origin" | "body_too_large";

export type GuardVerdict =
  | { allowed: true }
  | { allowed: false; kind: RefusalKind; status: 403 | 413 | 421; message: string };

/**
 * Canonical form of a host name or address as a browser would send it, or undefined when it is not
 * a well-formed host. The URL parser is the browsers' own, so `127.1` and `0x7f.0.0.1` become
 * `127.0.0.1` and `[0:0::1]` becomes `[::1]`, just as they would on the wire.
 */
export function canonicalHostName(text: string): string | undefined {
  const match = HOST_HEADER.exec(text);
  if (!match || match[3] !== undefined) return undefined;
  return canonicalFromParts(match[1], match[2]);
}

function canonicalFromParts(ipv6: string | undefined, regName: string | undefined): string | undefined {
  let hostname: string;
  try {
    hostname = new URL(`http://${ipv6 !== undefined ? `[${ipv6}]` : regName}/`).hostname;
  } catch {
    return undefined;
  }
  if (hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  return hostname.length > 0 ? hostname : undefined;
}

/** Splits a Host header into its canonical name and port; undefined when malformed. */
export function parseHostHeader(value: string): { name: string; port?: number } | undefined {
  if (value.length > MAX_HOST_HEADER_BYTES) return undefined;
  const match = HOST_HEADER.exec(value);
  if (!match) return undefined;
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && port > 65535) return undefined;
  const name = canonicalFromParts(match[1], match[2]);
  return name === undefined ? undefined : { name, port };
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** `localhost`, 127.0.0.0/8 and `[::1]`, in canonical form. */
export function isLoopbackName(name: string): boolean {
  return name === "localhost" || name === "[::1]" || LOOPBACK_V4.test(name);
}

function isWildcard(bindHost: string): boolean {
  return bindHost === "0.0.0.0" || bindHost === "::" || bindHost === "[::]";
}

/** Host text from config or `Deno.networkInterfaces()`: bare IPv6 gets its brackets. */
function canonicalConfigured(text: string): string | undefined {
  const trimmed = text.trim();
  const bracketed = trimmed.includes(":") && !trimmed.startsWith("[")
    ? `[${trimmed.split("%")[0]}]`
    : trimmed;
  return canonicalHostName(bracketed);
}

export function buildHostAllowList(input: HostAllowListInput): HostAllowList {
  const names = new Set<string>();
  const add = (text: string | undefined) => {
    const name = text === undefined ? undefined : canonicalConfigured(text);
    if (name !== undefined) names.add(name);
  };
  if (isWildcard(input.bindHost)) {
    // Every interface address reaches a wildcard bind. An IP literal cannot be rebound: a page whose
    // origin is that address was served by this machine, not by the attacker's DNS.
    for (const address of input.interfaceAddresses ?? []) add(address);
  } else {
    add(input.bindHost);
  }
  if (input.hostname) {
    add(input.hostname);
    add(`${input.hostname}.local`);
  }
  for (const name of input.configured ?? []) add(name);
  return { names };
}

export function isAllowedHostName(list: HostAllowList, name: string): boolean {
  return isLoopbackName(name) || list.names.has(name);
}

export interface GuardRequest {
  method: string;
  /** The request URL as the server built it (scheme and authority included). */
  url: string;
  /** The raw Host header; null when absent (HTTP/2 carries `:authority` in the URL instead). */
  host: string | null;
  origin: string | null;
}

function refuse(kind: RefusalKind, status: 403 | 413 | 421, message: string): GuardVerdict {
  return { allowed: false, kind, status, message };
}

/** Shown in error messages: what the client sent, cut short so it cannot flood a log line. */
function shown(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/**
 * Host and Origin verdict. Both the Host header and the URL's authority must name this host (they
 * differ for an absolute-form request target). A state-changing request that carries an Origin
 * must come from exactly the origin it is addressed to; requests without Origin (curl, the CLI)
 * pass, since browsers always send one with POST, PUT, PATCH and DELETE.
 */
export function checkHostAndOrigin(list: HostAllowList, request: GuardRequest): GuardVerdict {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return refuse("host", 421, "request URL is malformed");
  }
  const fromHeader = request.host === null ? undefined : parseHostHeader(request.host);
  if (request.host !== null && fromHeader === undefined) {
    return refuse("host", 421, `malformed Host header ${shown(request.host)}`);
  }
  for (const name of [fromHeader?.name, urlName(url)]) {
    if (name !== undefined && !isAllowedHostName(list, name)) {
      return refuse(
        "host",
        421,
        `host ${shown(name)} is not a name of this host; add it with --mgmt-allowed-host ` +
          `or mgmt_allowed_hosts in config.json`,
      );
    }
  }
  if (request.origin === null || !STATE_CHANGING_METHODS.has(request.method.toUpperCase())) {
    return { allowed: true };
  }
  const target = `${url.protocol}//${request.host ?? url.host}`;
  if (!sameOrigin(request.origin, target)) {
    return refuse("origin", 403, `cross-origin request from ${shown(request.origin)} refused`);
  }
  return { allowed: true };
}

function urlName(url: URL): string | undefined {
  const name = url.hostname.endsWith(".") ? url.hostname.slice(0, -1) : url.hostname;
  return name.length > 0 ? name : undefined;
}

/**
 * True when `origin` is exactly the origin of `target` after the URL parser's normalization (case,
 * default ports). `null` (sandboxed frames, file: pages) and anything with a path, query or user
 * part (browsers never send those) are cross-origin.
 */
export function sameOrigin(origin: string, target: string): boolean {
  try {
    const parsed = new URL(origin);
    if (parsed.pathname !== "/" || parsed.search || parsed.hash || parsed.username || parsed.password) {
      return false;
    }
    if (origin.endsWith("/")) return false;
    return parsed.origin !== "null" && parsed.origin === new URL(target).origin;
  } catch {
    return false;
  }
}

/**
 * Verdict on a declared `Content-Length` (null when absent). Without one, or with
 * `Transfer-Encoding`, the middleware counts the bytes as they stream and stops at the limit.
 */
export function checkDeclaredLength(
  contentLength: string | null,
  transferEncoding: string | null,
  limit = MAX_BODY_BYTES,
): GuardVerdict | "stream" {
  if (transferEncoding !== null || contentLength === null) return "stream";
  const declared = /^\d{1,20}$/.test(contentLength.trim()) ? Number(contentLength.trim()) : NaN;
  if (Number.isNaN(declared)) return "stream"; // the HTTP layer rejects these; count anyway
  return declared > limit ? bodyTooLarge(limit) : { allowed: true };
}

export function bodyTooLarge(limit = MAX_BODY_BYTES): GuardVerdict {
  return refuse("body_too_large", 413, `request body exceeds ${limit} bytes`);
}
