/** GameStream (Moonlight-compatible) host: so far the RTSP handshake and ANNOUNCE SDP parsing. */
export { RtspRequestParser, RtspSession, serializeResponse } from "./rtsp.ts";
export type { RtspRequest } from "./rtsp.ts";
export { parseSdp, SdpError } from "./sdp.ts";
export type { StreamParameters } from "./sdp.ts";
export * from "./apps.ts";
export * from "./enet.ts";
export * from "./launch.ts";
export * from "./nvhttp_xml.ts";
