/**
 * Pure pieces of the GameStream nvhttp control plane (docs/gamestream-protocol.md §2) and its mDNS
 * advertisement (§1.1): query-string parsing with limits, and the XML documents for `/serverinfo`,
 * `/applist`, `/cancel`, `/unpair` and errors. Routing, TLS and sockets belong to the caller.
 */
import type { GameStreamApp } from "./apps.ts";

// -----------------------------------------------------------------------------------------------------------
// Which endpoint is served where (§2.2)

export type NvHttpEndpoint =
  | "/serverinfo"
  | "/pair"
  | "/unpair"
  | "/applist"
  | "/appasset"
  | "/launch"
  | "/resume"
  | "/cancel";

/** True when `path` is answered on that transport; everything else gets `renderError(404)`. */
export function isEndpointServed(path: string, https: boolean): path is NvHttpEndpoint {
  switch (path) {
    case "/serverinfo":
    case "/pair":
    // Sunshine lacks /unpair; MQT calls it over HTTP after a failed pairing and ignores the result (§2.2).
    case "/unpair":
      return true;
    case "/applist":
    case "/appasset":
    case "/launch":
    case "/resume":
    case "/cancel":
      return https;
    default:
      return false;
  }
}

// -----------------------------------------------------------------------------------------------------------
// mDNS (§1.1)

export const MDNS_SERVICE_TYPE = "_nvstream._tcp.local";
/** A TXT record with zero strings is illegal and Apple resolvers reject it, so publish one empty string. */
export const MDNS_TXT_STRINGS: readonly string[] = Object.freeze([""]);
/** DNS labels are at most 63 bytes. */
const MDNS_MAX_LABEL_LENGTH = 63;

/** Sunshine's instance name: ≤63 chars, spaces → `-`, cut at the first char not in `[A-Za-z0-9-]`. */
export function mdnsInstanceName(hostname: string, fallback = "punktfunk"): string {
  const dashed = hostname.slice(0, MDNS_MAX_LABEL_LENGTH).replaceAll(" ", "-");
  const kept = /^[A-Za-z0-9-]*/.exec(dashed)![0];
  return kept.length > 0 ? kept : fallback;
}

// -----------------------------------------------------------------------------------------------------------
// Query strings

/** MQT's longest query (/launch with HDR fields) is about 500 bytes. */
export const MAX_QUERY_BYTES = 8 * 1024;
/** /launch carries about 20 parameters. */
export const MAX_QUERY_PARAMS = 64;

export type QueryErrorCode = "too_long" | "too_many_params" | "duplicate_param" | "malformed";

export class QueryError extends Error {
  override readonly name = "QueryError";
  constructor(readonly code: QueryErrorCode, readonly parameter: string | null, detail: string) {
    super(parameter === null ? `${code}: ${detail}` : `${code} (${parameter}): ${detail}`);
  }
}

export type QueryParams = ReadonlyMap<string, string>;

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses the query of a request target (`/launch?a=1&b=2`) or of an absolute URL. Names are case-sensitive,
 * `+` decodes to a space, a name without `=` gets "", empty segments (`a=1&&b=2`) are skipped.
 */
export function parseQuery(target: string): QueryParams {
  const start = target.indexOf("?");
  const params = new Map<string, string>();
  if (start < 0) return params;
  const fragment = target.indexOf("#", start);
  const query = target.slice(start + 1, fragment < 0 ? undefined : fragment);
  if (query.length > MAX_QUERY_BYTES) {
    throw new QueryError("too_long", null, `query has ${query.length} bytes, limit ${MAX_QUERY_BYTES}`);
  }
  // On the wire a query is printable ASCII; anything else was not percent-encoded.
  if (!/^[\x21-\x7e]*$/.test(query)) {
    throw new QueryError("malformed", null, "query contains non-printable bytes");
  }
  for (const segment of query.split("&")) {
    if (segment === "") continue;
    const equals = segment.indexOf("=");
    const name = percentDecode(equals < 0 ? segment : segment.slice(0, equals), null);
    if (name === "") throw new QueryError("malformed", null, "parameter without a name");
    const value = equals < 0 ? "" : percentDecode(segment.slice(equals + 1), name);
    if (params.has(name)) throw new QueryError("duplicate_param", name, "parameter appears more than once");
    if (params.size === MAX_QUERY_PARAMS) {
      throw new QueryError("too_many_params", null, `more than ${MAX_QUERY_PARAMS} parameters`);
    }
    params.set(name, value);
  }
  return params;
}

function percentDecode(text: string, parameter: string | null): string {
  const plain = text.replaceAll("+", " ");
  if (!plain.includes("%")) return plain;
  const bytes: number[] = [];
  for (let i = 0; i < plain.length; i++) {
    const char = plain.charCodeAt(i);
    if (char !== 0x25) {
      bytes.push(char);
      continue;
    }
    const hex = plain.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new QueryError("malformed", parameter, "bad percent escape");
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  try {
    return STRICT_UTF8.decode(new Uint8Array(bytes));
  } catch {
    throw new QueryError("malformed", parameter, "percent escapes are not valid UTF-8");
  }
}

// -----------------------------------------------------------------------------------------------------------
// XML

export const XML_PROLOG = '<?xml version="1.0" encoding="utf-8"?>\n';

/**
 * Escapes text for element content and double- or single-quoted attributes. Code points XML 1.0 cannot carry
 * at all (C0 controls other than tab/LF/CR, U+FFFE/U+FFFF, lone surrogates) become U+FFFD.
 */
export function xmlEscape(text: string): string {
  return text.replace(XML_ESCAPED, (match) => XML_ENTITIES[match] ?? "\ufffd");
}

const XML_ESCAPED = new RegExp(
  [
    "[&<>\"']",
    "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]",
    "[\\ud800-\\udbff](?![\\udc00-\\udfff])",
    "(?<![\\ud800-\\udbff])[\\udc00-\\udfff]",
  ].join("|"),
  "g",
);

const XML_ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

function element(name: string, content: string | number): string {
  return `<${name}>${typeof content === "number" ? String(content) : xmlEscape(content)}</${name}>`;
}

function rootDocument(statusCode: number, attributes: string, body: string): string {
  const open = `<root status_code="${statusCode}"${attributes}`;
  return XML_PROLOG + (body === "" ? `${open}/>` : `${open}>${body}</root>`);
}

/** `<root status_code="200">…</root>` around already-rendered child elements. */
export function renderOk(body = ""): string {
  return rootDocument(200, "", body);
}

/**
 * An error reply. Clients read `status_code`/`status_message` from the XML, not the HTTP status (§2.1);
 * Sunshine's 401 for an unverified client cert also carries `query="/path"` (§2.3).
 */
export function renderError(
  statusCode: number,
  message?: string,
  options: { query?: string; body?: string } = {},
): string {
  if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) {
    throw new RangeError(`status code ${statusCode} is not a 3-digit integer`);
  }
  let attributes = "";
  if (options.query !== undefined) attributes += ` query="${xmlEscape(options.query)}"`;
  if (message !== undefined) attributes += ` status_message="${xmlEscape(message)}"`;
  return rootDocument(statusCode, attributes, options.body ?? "");
}

export const UNAUTHORIZED_CLIENT_MESSAGE = "The client is not authorized. Certificate verification failed.";

/** §2.3: the reply to an HTTPS request whose client certificate matches no paired client. */
export function renderUnauthorized(path: string): string {
  return renderError(401, UNAUTHORIZED_CLIENT_MESSAGE, { query: path });
}

/** §2.8 */
export function renderCancel(): string {
  return renderOk(element("cancel", 1));
}

/** §2.2: answer /unpair with a bare success (the caller drops pending pairing state). */
export function renderUnpair(): string {
  return renderOk();
}

// -----------------------------------------------------------------------------------------------------------
// /serverinfo (§2.4, §10.1)

export const HOST_APP_VERSION = "7.1.431.-1";
export const HOST_GFE_VERSION = "3.23.0.74";
/** Sunshine's `MaxLumaPixelsHEVC` when HEVC is available; MQT treats 0 as "no HEVC". */
export const MAX_LUMA_PIXELS_HEVC = 1869449984;
export const PLACEHOLDER_MAC = "00:00:00:00:00:00";

/** `ServerCodecModeSupport` bits (MLC `SCM_*`). */
export const SCM_H264 = 0x0000_0001;
export const SCM_HEVC = 0x0000_0100;
export const SCM_HEVC_MAIN10 = 0x0000_0200;
export const SCM_AV1_MAIN8 = 0x0001_0000;
export const SCM_AV1_MAIN10 = 0x0002_0000;
export const SCM_H264_HIGH8_444 = 0x0004_0000;
export const SCM_HEVC_REXT8_444 = 0x0008_0000;
export const SCM_HEVC_REXT10_444 = 0x0010_0000;
export const SCM_AV1_HIGH8_444 = 0x0020_0000;
export const SCM_AV1_HIGH10_444 = 0x0040_0000;

/** What the host's encoders can produce. Absent 4:4:4 flags mean "no". */
export interface CodecSupport {
  readonly h264: boolean;
  readonly hevc: boolean;
  readonly hevcMain10: boolean;
  readonly av1: boolean;
  readonly av1Main10: boolean;
  readonly h264High444?: boolean;
  readonly hevcRext8_444?: boolean;
  readonly hevcRext10_444?: boolean;
  readonly av1High8_444?: boolean;
  readonly av1High10_444?: boolean;
}

export type ServerInfoErrorCode = "no_codec" | "inconsistent_codecs" | "invalid_field";

export class ServerInfoError extends Error {
  override readonly name = "ServerInfoError";
  constructor(readonly code: ServerInfoErrorCode, detail: string) {
    super(`${code}: ${detail}`);
  }
}

/** Each flag's bit and the 8-bit 4:2:0 flag it depends on. */
const CODEC_BITS: ReadonlyArray<readonly [keyof CodecSupport, number, keyof CodecSupport | null]> = [
  ["h264", SCM_H264, null],
  ["hevc", SCM_HEVC, null],
  ["hevcMain10", SCM_HEVC_MAIN10, "hevc"],
  ["av1", SCM_AV1_MAIN8, null],
  ["av1Main10", SCM_AV1_MAIN10, "av1"],
  ["h264High444", SCM_H264_HIGH8_444, "h264"],
  ["hevcRext8_444", SCM_HEVC_REXT8_444, "hevc"],
  ["hevcRext10_444", SCM_HEVC_REXT10_444, "hevcMain10"],
  ["av1High8_444", SCM_AV1_HIGH8_444, "av1"],
  ["av1High10_444", SCM_AV1_HIGH10_444, "av1Main10"],
];

/**
 * The `ServerCodecModeSupport` mask. MLC refuses a zero mask, and MQT can only pick a profile whose base
 * codec is also offered, so both are rejected.
 */
export function codecModeSupport(codecs: CodecSupport): number {
  let mask = 0;
  for (const [flag, bit, requires] of CODEC_BITS) {
    if (codecs[flag] !== true) continue;
    if (requires !== null && codecs[requires] !== true) {
      throw new ServerInfoError("inconsistent_codecs", `${flag} is offered without ${requires}`);
    }
    mask |= bit;
  }
  if (mask === 0) throw new ServerInfoError("no_codec", "at least one codec must be offered");
  return mask;
}

export interface DisplayMode {
  readonly width: number;
  readonly height: number;
  readonly refreshRate: number;
}

/** Host facts for /serverinfo; the per-request facts are in `ServerInfoContext`. */
export interface ServerInfo {
  readonly hostname: string;
  /** Persisted host UUID; MQT keys the host on it. */
  readonly uniqueId: string;
  readonly httpsPort: number;
  /** WAN HTTP port (Sunshine extension); normally the HTTP port. */
  readonly externalPort: number;
  /** Real MAC, sent only to an authenticated HTTPS client. */
  readonly mac: string;
  readonly codecs: CodecSupport;
  /** `ExternalIP`, only if configured. */
  readonly externalIp?: string;
  /** Running app ID, 0 when idle; non-zero also makes `state` BUSY. */
  readonly currentGameId: number;
  /** GFE's `<SupportedDisplayMode>` list (not sent by Sunshine); omitted when empty. */
  readonly displayModes?: readonly DisplayMode[];
}

export interface ServerInfoContext {
  readonly https: boolean;
  /** The TLS client certificate matched a paired client (always true for a routed HTTPS request, §2.3). */
  readonly pairedClientPresent: boolean;
  /** The request carried a `uniqueid` query parameter. */
  readonly uniqueIdQueryPresent: boolean;
  /** Local address of this TCP connection, as the socket reports it. */
  readonly localAddress: string;
}

/**
 * `LocalIP`: IPv4 (v4-mapped IPv6 is unwrapped); a native IPv6 address is reported as `127.0.0.1`, which MQT
 * ignores, as Sunshine does.
 */
export function serverInfoLocalIp(localAddress: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(localAddress);
  if (mapped) return mapped[1];
  return localAddress.includes(":") ? "127.0.0.1" : localAddress;
}

function checkPort(name: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ServerInfoError("invalid_field", `${name} ${port} is not in 1..65535`);
  }
  return port;
}

/** The /serverinfo document with the elements in Sunshine's order (§2.4). */
export function renderServerInfo(info: ServerInfo, context: ServerInfoContext): string {
  if (!Number.isInteger(info.currentGameId) || info.currentGameId < 0 || info.currentGameId > 0x7fff_ffff) {
    throw new ServerInfoError("invalid_field", `currentGameId ${info.currentGameId} is not in 0..2^31-1`);
  }
  const authenticated = context.https && context.pairedClientPresent;
  const parts = [
    element("hostname", info.hostname),
    element("appversion", HOST_APP_VERSION),
    element("GfeVersion", HOST_GFE_VERSION),
    element("uniqueid", info.uniqueId),
    element("HttpsPort", checkPort("httpsPort", info.httpsPort)),
    element("ExternalPort", checkPort("externalPort", info.externalPort)),
    element("MaxLumaPixelsHEVC", info.codecs.hevc ? MAX_LUMA_PIXELS_HEVC : 0),
    element("mac", authenticated ? info.mac : PLACEHOLDER_MAC),
    element("LocalIP", serverInfoLocalIp(context.localAddress)),
    element("ServerCodecModeSupport", codecModeSupport(info.codecs)),
  ];
  if (info.externalIp !== undefined) parts.push(element("ExternalIP", info.externalIp));
  if (info.displayModes !== undefined && info.displayModes.length > 0) {
    // MQT collects every <DisplayMode> wherever it is; the wrapper name follows GFE.
    const modes = info.displayModes.map((mode) =>
      "<DisplayMode>" + element("Width", mode.width) + element("Height", mode.height) +
      element("RefreshRate", mode.refreshRate) + "</DisplayMode>"
    );
    parts.push(`<SupportedDisplayMode>${modes.join("")}</SupportedDisplayMode>`);
  }
  parts.push(
    element("PairStatus", authenticated && context.uniqueIdQueryPresent ? 1 : 0),
    element("currentgame", info.currentGameId),
    element("state", info.currentGameId !== 0 ? "SUNSHINE_SERVER_BUSY" : "SUNSHINE_SERVER_FREE"),
  );
  return renderOk(parts.join(""));
}

// -----------------------------------------------------------------------------------------------------------
// /applist (§2.5)

export function renderAppList(apps: readonly GameStreamApp[]): string {
  const entries = apps.map((app) =>
    "<App>" + element("IsHdrSupported", app.hdrSupported ? 1 : 0) + element("AppTitle", app.title) +
    element("ID", app.id) + "</App>"
  );
  return renderOk(entries.join(""));
}
