/**
 * ENet 1.3 wire codec for the GameStream control stream (docs/gamestream-protocol.md §6.1, §14): datagrams to
 * typed commands and back. The reliability machinery both peers share is `enet_reliability.ts`; the host peer
 * is `enet.ts`.
 *
 * Why our own ENet in TypeScript rather than Debian's libenet: the control stream carries at most a few hundred small
 * messages per second (input, pings), so the JS cost is irrelevant; a pure state machine with the clock passed in
 * (`nowMs`) is testable without sockets; and libenet would add a C dependency plus a second event loop. It also
 * sidesteps the §14 pitfalls of stock 1.3.17 (IPv4 only, no self-timed retransmits): the caller owns the socket,
 * demultiplexes by remote address and calls `tick` as often as it likes.
 *
 * Wire facts (ENet `protocol.h`): every integer is big-endian. Header = `u16 peerID` (low 12 bits peer, bits 12–13
 * session, bit 14 compressed, bit 15 sentTime present) then `u16 sentTime` only when bit 15 is set. Commands follow,
 * each `u8 command` (low 4 bits number, 0x80 acknowledge, 0x40 unsequenced), `u8 channelID`,
 * `u16 reliableSequenceNumber`, then a fixed body per command and, for the send commands, `dataLength` bytes.
 * Checksums and compression are never enabled by Moonlight or Sunshine (§6.1).
 */

// ---------------------------------------------------------------------------------------------------------------
// Constants

export const ENET_COMMAND = {
  ACKNOWLEDGE: 1,
  CONNECT: 2,
  VERIFY_CONNECT: 3,
  DISCONNECT: 4,
  PING: 5,
  SEND_RELIABLE: 6,
  SEND_UNRELIABLE: 7,
  SEND_FRAGMENT: 8,
  SEND_UNSEQUENCED: 9,
  BANDWIDTH_LIMIT: 10,
  THROTTLE_CONFIGURE: 11,
  SEND_UNRELIABLE_FRAGMENT: 12,
} as const;

const COMMAND_MASK = 0x0f;
const COMMAND_FLAG_ACKNOWLEDGE = 0x80;
const COMMAND_FLAG_UNSEQUENCED = 0x40;
const HEADER_FLAG_COMPRESSED = 1 << 14;
const HEADER_FLAG_SENT_TIME = 1 << 15;
const HEADER_SESSION_MASK = 3 << 12;
const HEADER_SESSION_SHIFT = 12;
/** Peer ID 0xFFF = "no peer yet"; only CONNECT may use it. */
export const ENET_MAXIMUM_PEER_ID = 0xfff;
/** Channel 0xFF carries connection-level commands (connect, verify, disconnect, ping, limits). */
export const ENET_CONNECTION_CHANNEL = 0xff;
export const ENET_MINIMUM_MTU = 576;
export const ENET_MAXIMUM_MTU = 4096;
export const ENET_MINIMUM_WINDOW_SIZE = 4096;
export const ENET_MAXIMUM_WINDOW_SIZE = 65536;
export const ENET_MAXIMUM_CHANNEL_COUNT = 255;
/** The cgutman/enet fork's default MTU, which Moonlight negotiates (§6.1, §14). */
export const ENET_MOONLIGHT_MTU = 900;
/** Moonlight asks for 0x30 channels (§6.1). */
export const ENET_MOONLIGHT_CHANNEL_COUNT = 48;
/** Stock ENet peer timeouts (§14): limit 32, minimum 5 s, maximum 30 s. */
export const ENET_DEFAULT_TIMEOUT_LIMIT = 32;
export const ENET_DEFAULT_TIMEOUT_MINIMUM_MS = 5000;
export const ENET_DEFAULT_TIMEOUT_MAXIMUM_MS = 30000;
/** ENET_PEER_PING_INTERVAL. */
export const ENET_PING_INTERVAL_MS = 500;
/** `u16 peerID` plus `u16 sentTime`: the header every datagram carrying a reliable command has. */
export const ENET_HEADER_SIZE_WITH_TIME = 4;

const COMMAND_SIZES: Record<number, number> = {
  [ENET_COMMAND.ACKNOWLEDGE]: 8,
  [ENET_COMMAND.CONNECT]: 48,
  [ENET_COMMAND.VERIFY_CONNECT]: 44,
  [ENET_COMMAND.DISCONNECT]: 8,
  [ENET_COMMAND.PING]: 4,
  [ENET_COMMAND.SEND_RELIABLE]: 6,
  [ENET_COMMAND.SEND_UNRELIABLE]: 8,
  [ENET_COMMAND.SEND_FRAGMENT]: 24,
  [ENET_COMMAND.SEND_UNSEQUENCED]: 8,
  [ENET_COMMAND.BANDWIDTH_LIMIT]: 12,
  [ENET_COMMAND.THROTTLE_CONFIGURE]: 16,
  [ENET_COMMAND.SEND_UNRELIABLE_FRAGMENT]: 24,
};
/** SEND_FRAGMENT's fixed part; ENet fragments any message longer than MTU − header − this. */
export const ENET_FRAGMENT_COMMAND_SIZE = 24;

// ---------------------------------------------------------------------------------------------------------------
// Codec types

export interface EnetHeader {
  peerId: number;
  sessionId: number;
  /** Present only when the sender set the sentTime flag (it does whenever a command needs an acknowledgement). */
  sentTime: number | null;
}

interface CommandBase {
  channelId: number;
  reliableSequenceNumber: number;
  /** Sender wants an ACKNOWLEDGE for this command. */
  acknowledge: boolean;
  unsequenced: boolean;
}

export interface EnetConnectParameters {
  outgoingPeerId: number;
  incomingSessionId: number;
  outgoingSessionId: number;
  mtu: number;
  windowSize: number;
  channelCount: number;
  incomingBandwidth: number;
  outgoingBandwidth: number;
  packetThrottleInterval: number;
  packetThrottleAcceleration: number;
  packetThrottleDeceleration: number;
  connectId: number;
}

export interface EnetFragmentFields {
  startSequenceNumber: number;
  fragmentCount: number;
  fragmentNumber: number;
  totalLength: number;
  fragmentOffset: number;
  payload: Uint8Array;
}

export type EnetCommand =
  & CommandBase
  & (
    | { kind: "acknowledge"; receivedReliableSequenceNumber: number; receivedSentTime: number }
    | ({ kind: "connect"; data: number } & EnetConnectParameters)
    | ({ kind: "verify_connect" } & EnetConnectParameters)
    | { kind: "disconnect"; data: number }
    | { kind: "ping" }
    | { kind: "send_reliable"; payload: Uint8Array }
    | { kind: "send_unreliable"; unreliableSequenceNumber: number; payload: Uint8Array }
    | { kind: "send_unsequenced"; unsequencedGroup: number; payload: Uint8Array }
    | ({ kind: "send_fragment" } & EnetFragmentFields)
    | ({ kind: "send_unreliable_fragment" } & EnetFragmentFields)
    | { kind: "bandwidth_limit"; incomingBandwidth: number; outgoingBandwidth: number }
    | { kind: "throttle_configure"; interval: number; acceleration: number; deceleration: number }
  );

export type EnetCommandKind = EnetCommand["kind"];

export interface EnetDatagram {
  header: EnetHeader;
  commands: EnetCommand[];
}

export type EnetDecodeErrorCode =
  | "too_short"
  | "too_long"
  | "compressed"
  | "unknown_command"
  | "truncated_command"
  | "no_commands";

export class EnetDecodeError extends Error {
  override readonly name = "EnetDecodeError";
  constructor(readonly code: EnetDecodeErrorCode, message: string) {
    super(message);
  }
}

export type EnetDecodeResult = { ok: true; datagram: EnetDatagram } | { ok: false; error: EnetDecodeError };

const KIND_TO_NUMBER: Record<EnetCommandKind, number> = {
  acknowledge: ENET_COMMAND.ACKNOWLEDGE,
  connect: ENET_COMMAND.CONNECT,
  verify_connect: ENET_COMMAND.VERIFY_CONNECT,
  disconnect: ENET_COMMAND.DISCONNECT,
  ping: ENET_COMMAND.PING,
  send_reliable: ENET_COMMAND.SEND_RELIABLE,
  send_unreliable: ENET_COMMAND.SEND_UNRELIABLE,
  send_fragment: ENET_COMMAND.SEND_FRAGMENT,
  send_unsequenced: ENET_COMMAND.SEND_UNSEQUENCED,
  bandwidth_limit: ENET_COMMAND.BANDWIDTH_LIMIT,
  throttle_configure: ENET_COMMAND.THROTTLE_CONFIGURE,
  send_unreliable_fragment: ENET_COMMAND.SEND_UNRELIABLE_FRAGMENT,
};

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/** Parses one UDP datagram. Rejects it whole on any malformed command (ENet itself stops at the first one). */
export function decodeDatagram(bytes: Uint8Array): EnetDecodeResult {
  const fail = (code: EnetDecodeErrorCode, message: string): EnetDecodeResult => ({
    ok: false,
    error: new EnetDecodeError(code, message),
  });
  if (bytes.length < 2) return fail("too_short", `datagram of ${bytes.length} bytes has no header`);
  if (bytes.length > ENET_MAXIMUM_MTU) {
    return fail("too_long", `datagram of ${bytes.length} bytes exceeds 4096`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawPeerId = view.getUint16(0);
  if (rawPeerId & HEADER_FLAG_COMPRESSED) return fail("compressed", "compressed datagrams are not supported");
  let offset = 2;
  let sentTime: number | null = null;
  if (rawPeerId & HEADER_FLAG_SENT_TIME) {
    if (bytes.length < 4) return fail("too_short", "header announces sentTime but datagram ends");
    sentTime = view.getUint16(2);
    offset = 4;
  }
  const header: EnetHeader = {
    peerId: rawPeerId & ENET_MAXIMUM_PEER_ID,
    sessionId: (rawPeerId & HEADER_SESSION_MASK) >> HEADER_SESSION_SHIFT,
    sentTime,
  };
  const commands: EnetCommand[] = [];
  while (offset < bytes.length) {
    const commandByte = bytes[offset];
    const number = commandByte & COMMAND_MASK;
    const size = COMMAND_SIZES[number];
    if (size === undefined) return fail("unknown_command", `unknown command number ${number} at ${offset}`);
    if (offset + size > bytes.length) {
      return fail("truncated_command", `command ${number} at ${offset} truncated`);
    }
    const base: CommandBase = {
      channelId: bytes[offset + 1],
      reliableSequenceNumber: view.getUint16(offset + 2),
      acknowledge: (commandByte & COMMAND_FLAG_ACKNOWLEDGE) !== 0,
      unsequenced: (commandByte & COMMAND_FLAG_UNSEQUENCED) !== 0,
    };
    const u16 = (at: number) => view.getUint16(offset + at);
    const u32 = (at: number) => view.getUint32(offset + at);
    let dataLength = 0;
    let dataAt = 0;
    const takeData = (lengthAt: number): Uint8Array | null => {
      dataLength = u16(lengthAt);
      dataAt = offset + size;
      if (dataAt + dataLength > bytes.length) return null;
      return bytes.slice(dataAt, dataAt + dataLength);
    };
    const connectParameters = (): EnetConnectParameters => ({
      outgoingPeerId: u16(4),
      incomingSessionId: bytes[offset + 6],
      outgoingSessionId: bytes[offset + 7],
      mtu: u32(8),
      windowSize: u32(12),
      channelCount: u32(16),
      incomingBandwidth: u32(20),
      outgoingBandwidth: u32(24),
      packetThrottleInterval: u32(28),
      packetThrottleAcceleration: u32(32),
      packetThrottleDeceleration: u32(36),
      connectId: u32(40),
    });
    let command: EnetCommand;
    switch (number) {
      case ENET_COMMAND.ACKNOWLEDGE:
        command = {
          ...base,
          kind: "acknowledge",
          receivedReliableSequenceNumber: u16(4),
          receivedSentTime: u16(6),
        };
        break;
      case ENET_COMMAND.CONNECT:
        command = { ...base, kind: "connect", ...connectParameters(), data: u32(44) };
        break;
      case ENET_COMMAND.VERIFY_CONNECT:
        command = { ...base, kind: "verify_connect", ...connectParameters() };
        break;
      case ENET_COMMAND.DISCONNECT:
        command = { ...base, kind: "disconnect", data: u32(4) };
        break;
      case ENET_COMMAND.PING:
        command = { ...base, kind: "ping" };
        break;
      case ENET_COMMAND.BANDWIDTH_LIMIT:
        command = { ...base, kind: "bandwidth_limit", incomingBandwidth: u32(4), outgoingBandwidth: u32(8) };
        break;
      case ENET_COMMAND.THROTTLE_CONFIGURE:
        command = {
          ...base,
          kind: "throttle_configure",
          interval: u32(4),
          acceleration: u32(8),
          deceleration: u32(12),
        };
        break;
      case ENET_COMMAND.SEND_RELIABLE: {
        const payload = takeData(4);
        if (!payload) return fail("truncated_command", `reliable data at ${offset} runs past the datagram`);
        command = { ...base, kind: "send_reliable", payload };
        break;
      }
      case ENET_COMMAND.SEND_UNRELIABLE: {
        const payload = takeData(6);
        if (!payload) return fail("truncated_command", `unreliable data at ${offset} runs past the datagram`);
        command = { ...base, kind: "send_unreliable", unreliableSequenceNumber: u16(4), payload };
        break;
      }
      case ENET_COMMAND.SEND_UNSEQUENCED: {
        const payload = takeData(6);
        if (!payload) {
          return fail("truncated_command", `unsequenced data at ${offset} runs past the datagram`);
        }
        command = { ...base, kind: "send_unsequenced", unsequencedGroup: u16(4), payload };
        break;
      }
      default: {
        // SEND_FRAGMENT and SEND_UNRELIABLE_FRAGMENT share one layout.
        const payload = takeData(6);
        if (!payload) return fail("truncated_command", `fragment data at ${offset} runs past the datagram`);
        command = {
          ...base,
          kind: number === ENET_COMMAND.SEND_FRAGMENT ? "send_fragment" : "send_unreliable_fragment",
          startSequenceNumber: u16(4),
          fragmentCount: u32(8),
          fragmentNumber: u32(12),
          totalLength: u32(16),
          fragmentOffset: u32(20),
          payload,
        };
      }
    }
    commands.push(command);
    offset += size + dataLength;
  }
  if (commands.length === 0) return fail("no_commands", "datagram carries no command");
  return { ok: true, datagram: { header, commands } };
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** Encoded size of one command including its data. */
export function encodedCommandSize(command: EnetCommand): number {
  const size = COMMAND_SIZES[KIND_TO_NUMBER[command.kind]];
  return "payload" in command ? size + command.payload.length : size;
}

function writeCommand(view: DataView, bytes: Uint8Array, offset: number, command: EnetCommand): number {
  const flags = (command.acknowledge ? COMMAND_FLAG_ACKNOWLEDGE : 0) |
    (command.unsequenced ? COMMAND_FLAG_UNSEQUENCED : 0);
  bytes[offset] = KIND_TO_NUMBER[command.kind] | flags;
  bytes[offset + 1] = command.channelId;
  view.setUint16(offset + 2, command.reliableSequenceNumber);
  const u16 = (at: number, value: number) => view.setUint16(offset + at, value);
  const u32 = (at: number, value: number) => view.setUint32(offset + at, value >>> 0);
  const connectParameters = (c: EnetConnectParameters) => {
    u16(4, c.outgoingPeerId);
    bytes[offset + 6] = c.incomingSessionId;
    bytes[offset + 7] = c.outgoingSessionId;
    u32(8, c.mtu);
    u32(12, c.windowSize);
    u32(16, c.channelCount);
    u32(20, c.incomingBandwidth);
    u32(24, c.outgoingBandwidth);
    u32(28, c.packetThrottleInterval);
    u32(32, c.packetThrottleAcceleration);
    u32(36, c.packetThrottleDeceleration);
    u32(40, c.connectId);
  };
  const size = COMMAND_SIZES[KIND_TO_NUMBER[command.kind]];
  switch (command.kind) {
    case "acknowledge":
      u16(4, command.receivedReliableSequenceNumber);
      u16(6, command.receivedSentTime);
      break;
    case "connect":
      connectParameters(command);
      u32(44, command.data);
      break;
    case "verify_connect":
      connectParameters(command);
      break;
    case "disconnect":
      u32(4, command.data);
      break;
    case "ping":
      break;
    case "bandwidth_limit":
      u32(4, command.incomingBandwidth);
      u32(8, command.outgoingBandwidth);
      break;
    case "throttle_configure":
      u32(4, command.interval);
      u32(8, command.acceleration);
      u32(12, command.deceleration);
      break;
    case "send_reliable":
      u16(4, command.payload.length);
      break;
    case "send_unreliable":
      u16(4, command.unreliableSequenceNumber);
      u16(6, command.payload.length);
      break;
    case "send_unsequenced":
      u16(4, command.unsequencedGroup);
      u16(6, command.payload.length);
      break;
    case "send_fragment":
    case "send_unreliable_fragment":
      u16(4, command.startSequenceNumber);
      u16(6, command.payload.length);
      u32(8, command.fragmentCount);
      u32(12, command.fragmentNumber);
      u32(16, command.totalLength);
      u32(20, command.fragmentOffset);
      break;
  }
  if ("payload" in command) bytes.set(command.payload, offset + size);
  return offset + encodedCommandSize(command);
}

/** Serialises a datagram. The sentTime flag is set exactly when `header.sentTime` is not null. */
export function encodeDatagram(header: EnetHeader, commands: readonly EnetCommand[]): Uint8Array {
  const headerSize = header.sentTime === null ? 2 : 4;
  const total = commands.reduce((sum, c) => sum + encodedCommandSize(c), headerSize);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  const flags = header.sentTime === null ? 0 : HEADER_FLAG_SENT_TIME;
  view.setUint16(
    0,
    (header.peerId & ENET_MAXIMUM_PEER_ID) | ((header.sessionId & 3) << HEADER_SESSION_SHIFT) | flags,
  );
  if (header.sentTime !== null) view.setUint16(2, header.sentTime & 0xffff);
  let offset = headerSize;
  for (const command of commands) offset = writeCommand(view, bytes, offset, command);
  return bytes;
}
