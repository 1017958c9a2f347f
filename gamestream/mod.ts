/** GameStream (Moonlight-compatible) host: nvhttp, launch, RTSP + SDP, ENet control, input, the host plane. */
export { RtspRequestParser, RtspSession, serializeResponse } from "./rtsp.ts";
export type { RtspRequest } from "./rtsp.ts";
export { parseSdp, SdpError } from "./sdp.ts";
export type { StreamParameters } from "./sdp.ts";
export * from "./apps.ts";
export * from "./enet.ts";
export * from "./launch.ts";
export * from "./nvhttp_xml.ts";
export * from "./control.ts";
export * from "./input.ts";
export { GameStreamHost } from "./host.ts";
export type { DesktopSource, GameStreamHostOptions, InputSink } from "./host.ts";
